"""`finfocus comment github|gitlab` against a local HTTP stand-in of each API (a real HTTP server
on 127.0.0.1) that checks every request: method, path, auth/accept/version headers and body,
serves existing comments over several pages, and answers 401/403/404/422 like the real APIs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import typer
from typer.testing import CliRunner

from services.pricing.comment import marker

ROOT = Path(__file__).resolve().parents[2]
REPORT = {
    "summary": {
        "currency": "USD",
        "before": "0",
        "totalMonthly": "70.08",
        "delta": "70.08",
        "resources": 1,
        "hoursPerMonth": 730,
        "byProvider": {"AWS": "70.08"},
    },
    "resources": [
        {
            "name": "web",
            "type": "aws:ec2/instance:Instance",
            "op": "create",
            "sku": "m5.large",
            "region": "us-east-1",
            "before": "0",
            "monthly": "70.08",
            "delta": "70.08",
            "priceSource": "spec",
        }
    ],
}
PAGE = 2  # the stand-in's page size, so that a handful of comments spans several pages


class StandIn(ThreadingHTTPServer):
    """GitHub (`/repos/{repo}/issues/...`) and GitLab (`/api/v4/projects/{id}/merge_requests/...`)."""

    daemon_threads = True

    def __init__(self, platform: str, token: str = "good-token"):
        super().__init__(("127.0.0.1", 0), Handler)
        self.platform = platform
        self.token = token
        self.comments: list[dict] = []
        self.next_id = 100
        self.requests: list[dict] = []
        self.problems: list[str] = []
        self.fail: tuple[int, dict] | None = None  # answer every write with this status

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}" + ("/api/v4" if self.platform == "gitlab" else "")

    def seed(self, *bodies: str) -> list[int]:
        ids = []
        for body in bodies:
            self.next_id += 1
            self.comments.append({"id": self.next_id, "body": body})
            ids.append(self.next_id)
        return ids


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, payload=None, headers: dict | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        s = self.server
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        s.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "json": body}
        )
        if (
            body is not None
            and self.headers.get("Content-Type", "").split(";")[0] != "application/json"
        ):
            s.problems.append(f"{self.command} {self.path}: body is not sent as application/json")
        if s.platform == "github":
            self._github(body)
        else:
            self._gitlab(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    # -- GitHub -----------------------------------------------------------------------
    def _github(self, body) -> None:
        s = self.server
        h = self.headers
        if h.get("Authorization") != f"Bearer {s.token}":
            return self._answer(
                401,
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            )
        if (
            h.get("Accept") != "application/vnd.github+json"
            or h.get("X-GitHub-Api-Version") != "2022-11-28"
        ):
            s.problems.append(f"{self.command} {self.path}: missing Accept/X-GitHub-Api-Version")
            return self._answer(415, {"message": "Unsupported Media Type"})
        url = urlsplit(self.path)
        m = re.fullmatch(r"/repos/acme/infra/issues/(\d+)/comments", url.path)
        if m and int(m.group(1)) != 7:
            return self._answer(404, {"message": "Not Found"})
        if m and self.command == "GET":
            q = parse_qs(url.query)
            if q.get("per_page") != ["100"]:
                s.problems.append(f"listing without per_page=100: {self.path}")
            page = int(q.get("page", ["1"])[0])
            chunk = s.comments[(page - 1) * PAGE : page * PAGE]
            headers = {}
            if page * PAGE < len(s.comments):
                nxt = f"{s.base}/repos/acme/infra/issues/7/comments?per_page=100&page={page + 1}"
                headers["Link"] = (
                    f'<{nxt}>; rel="next", <{s.base}/repos/acme/infra/issues/7/comments?page=99>; rel="last"'
                )
            return self._answer(200, chunk, headers)
        if m and self.command == "POST":
            return self._write_new(
                body,
                lambda c: {
                    **c,
                    "html_url": f"https://github.example/acme/infra/pull/7#issuecomment-{c['id']}",
                },
            )
        m = re.fullmatch(r"/repos/acme/infra/issues/comments/(\d+)", url.path)
        if m and self.command in {"PATCH", "DELETE"}:
            return self._write_existing(int(m.group(1)), body, 200, 204)
        return self._answer(404, {"message": "Not Found"})

    # -- GitLab -----------------------------------------------------------------------
    def _gitlab(self, body) -> None:
        s = self.server
        if self.headers.get("PRIVATE-TOKEN") != s.token:
            return self._answer(401, {"message": "401 Unauthorized"})
        url = urlsplit(self.path)
        m = re.fullmatch(
            r"/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes(?:/(\d+))?", url.path
        )
        if not m or m.group(1) not in {"group%2Finfra", "1234"}:
            return self._answer(404, {"message": "404 Project Not Found"})
        if int(m.group(2)) != 3:
            return self._answer(404, {"message": "404 Not found"})
        if m.group(3) is None and self.command == "GET":
            q = parse_qs(url.query)
            if q.get("sort") != ["asc"]:
                s.problems.append(f"notes listed without sort=asc: {self.path}")
            page = int(q.get("page", ["1"])[0])
            chunk = s.comments[(page - 1) * PAGE : page * PAGE]
            more = page * PAGE < len(s.comments)
            return self._answer(
                200,
                [{**c, "system": False} for c in chunk],
                {"X-Next-Page": str(page + 1) if more else "", "X-Page": str(page)},
            )
        if m.group(3) is None and self.command == "POST":
            return self._write_new(body, lambda c: c)
        if m.group(3) is not None and self.command in {"PUT", "DELETE"}:
            return self._write_existing(int(m.group(3)), body, 200, 204)
        return self._answer(405, {"message": "405 Method Not Allowed"})

    # -- shared -----------------------------------------------------------------------
    def _write_new(self, body, shape) -> None:
        s = self.server
        if s.fail:
            return self._answer(*s.fail)
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
            return self._answer(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"field": "body", "code": "missing_field"}],
                },
            )
        s.next_id += 1
        comment = {"id": s.next_id, "body": body["body"]}
        s.comments.append(comment)
        return self._answer(201, shape(comment))

    def _write_existing(self, cid: int, body, ok_update: int, ok_delete: int) -> None:
        s = self.server
        if s.fail:
            return self._answer(*s.fail)
        found = next((c for c in s.comments if c["id"] == cid), None)
        if found is None:
            return self._answer(404, {"message": "Not Found"})
        if self.command == "DELETE":
            s.comments.remove(found)
            return self._answer(ok_delete)
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return self._answer(422, {"message": "Validation Failed"})
        found["body"] = body["body"]
        return self._answer(ok_update, found)


@pytest.fixture
def github():
    server = StandIn("github")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    assert server.problems == []


@pytest.fixture
def gitlab():
    server = StandIn("gitlab")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    assert server.problems == []


@pytest.fixture
def report(tmp_path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    return path


def _app() -> typer.Typer:
    from services.pricing.comment_cli import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def gh(
    args: list[str],
    server: StandIn,
    token: str | None = "good-token",
    extra_env: dict | None = None,
):
    env = {
        "GITHUB_API_URL": server.base,
        "GITHUB_REPOSITORY": "acme/infra",
        "GITHUB_REF": "refs/heads/main",
        "FINFOCUS_SECRETS_BACKEND": "environment",
        **(extra_env or {}),
    }
    if token is not None:
        env["GITHUB_TOKEN"] = token
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "GITLAB_TOKEN",
            "VAULT_ADDR",
            "FINFOCUS_SECRET_GITHUB_TOKEN",
            "FINFOCUS_SECRET_GITLAB_TOKEN",
        }
    }
    return CliRunner().invoke(
        _app(),
        ["comment", "github", *args],
        env={**{k: None for k in os.environ if k not in clean}, **env},
    )


def gl(
    args: list[str],
    server: StandIn,
    token: str | None = "good-token",
    extra_env: dict | None = None,
):
    env = {"CI_SERVER_URL": server.base.removesuffix("/api/v4"), **(extra_env or {})}
    if token is not None:
        env["GITLAB_TOKEN"] = token
    drop = {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "VAULT_ADDR",
        "CI_API_V4_URL",
        "CI_PROJECT_ID",
        "CI_MERGE_REQUEST_IID",
        "FINFOCUS_SECRET_GITLAB_TOKEN",
    }
    return CliRunner().invoke(
        _app(), ["comment", "gitlab", *args], env={**{k: None for k in drop}, **env}
    )


def _ours(server: StandIn) -> list[dict]:
    return [c for c in server.comments if c["body"].startswith(marker())]


# -- GitHub ---------------------------------------------------------------------------


def test_github_update_creates_then_edits_in_place_across_pages(github, report, tmp_path):
    github.seed("first!", "LGTM", "nit: typo", "ship it", "one more")  # 5 others: 3 pages of 2
    result = gh(["--pull-request", "7", "--path", str(report)], github)
    assert result.exit_code == 0, result.output
    assert "comment created" in result.output and "issuecomment-106" in result.output
    listing = [r for r in github.requests if r["method"] == "GET"]
    assert [r["path"] for r in listing] == [
        "/repos/acme/infra/issues/7/comments?per_page=100&page=1",
        "/repos/acme/infra/issues/7/comments?per_page=100&page=2",
        "/repos/acme/infra/issues/7/comments?per_page=100&page=3",
    ]
    post = github.requests[-1]
    assert (post["method"], post["path"]) == ("POST", "/repos/acme/infra/issues/7/comments")
    assert post["headers"]["Authorization"] == "Bearer good-token"
    assert post["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    text = post["json"]["body"]
    assert text.startswith(marker() + "\n## FinFocus cost estimate")
    assert (
        "0.00 → 70.08 USD (+70.08 USD)" in text
        and "| `web` | `aws:ec2/instance:Instance` | create | m5.large |" in text
    )
    assert set(post["json"]) == {"body"}

    # same report again: nothing written
    github.requests.clear()
    result = gh(["--pull-request", "7", "--path", str(report)], github)
    assert result.exit_code == 0 and "comment unchanged: id 106" in result.output
    assert {r["method"] for r in github.requests} == {"GET"}

    # a new figure: our comment (now on the 3rd page) is edited, nothing else
    changed = json.loads(report.read_text())
    changed["summary"]["totalMonthly"] = changed["summary"]["delta"] = "99.50"
    report.write_text(json.dumps(changed))
    github.requests.clear()
    result = gh(["--pull-request", "7", "--path", str(report), "--behavior", "update"], github)
    assert result.exit_code == 0 and "comment updated: id 106" in result.output
    writes = [r for r in github.requests if r["method"] != "GET"]
    assert [(r["method"], r["path"]) for r in writes] == [
        ("PATCH", "/repos/acme/infra/issues/comments/106")
    ]
    assert "99.50 USD" in writes[0]["json"]["body"]
    assert len(github.comments) == 6 and len(_ours(github)) == 1


def test_github_new_and_delete_and_new(github, report):
    github.seed(
        "LGTM",
        f"{marker()}\nold estimate",
        "nit",
        f"{marker()}\nolder estimate",
        f"{marker('prod')}\nprod stack",
    )
    result = gh(["--pull-request", "7", "--path", str(report), "--behavior", "new"], github)
    assert result.exit_code == 0, result.output
    assert [r["method"] for r in github.requests] == ["POST"]  # `new` does not even list
    assert len(_ours(github)) == 3

    github.requests.clear()
    result = gh(
        ["--pull-request", "7", "--path", str(report), "--behavior", "delete-and-new"], github
    )
    assert result.exit_code == 0, result.output
    assert "deleted 3 earlier" in result.output
    writes = [(r["method"], r["path"]) for r in github.requests if r["method"] != "GET"]
    assert writes == [
        ("DELETE", "/repos/acme/infra/issues/comments/102"),
        ("DELETE", "/repos/acme/infra/issues/comments/104"),
        ("DELETE", "/repos/acme/infra/issues/comments/106"),
        ("POST", "/repos/acme/infra/issues/7/comments"),
    ]
    assert [c["body"].split("\n")[0] for c in github.comments] == [
        "LGTM",
        "nit",
        marker("prod"),
        marker(),
    ]  # the other tag's comment and people's comments stay


def test_github_markdown_report_and_pr_number_from_the_actions_ref(github, tmp_path):
    md = tmp_path / "report.md"
    md.write_text("## FinFocus cost estimate\n\n**Monthly: 1.00 → 2.00 USD**\n")
    result = gh(["--path", str(md)], github, extra_env={"GITHUB_REF": "refs/pull/7/merge"})
    assert result.exit_code == 0, result.output
    assert (
        github.comments[-1]["body"]
        == f"{marker()}\n## FinFocus cost estimate\n\n**Monthly: 1.00 → 2.00 USD**\n"
    )


def test_github_token_from_the_secrets_provider(github, report):
    result = gh(
        ["--pull-request", "7", "--path", str(report)],
        github,
        token=None,
        extra_env={"FINFOCUS_SECRET_GITHUB_TOKEN": "good-token"},
    )
    assert result.exit_code == 0, result.output
    assert github.requests[-1]["headers"]["Authorization"] == "Bearer good-token"


@pytest.mark.parametrize(
    ("args", "token", "fail", "code", "message"),
    [
        (
            ["--pull-request", "7"],
            "wrong",
            None,
            1,
            "refused the token (401 Unauthorized) while trying to list the existing comments; check GITHUB_TOKEN: Bad credentials",
        ),
        (
            ["--pull-request", "8"],
            "good-token",
            None,
            1,
            "acme/infra pull request #8 was not found on",
        ),
        (
            ["--pull-request", "7"],
            "good-token",
            (
                422,
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "IssueComment",
                            "code": "custom",
                            "message": "body is too long (maximum is 65536 characters)",
                        }
                    ],
                },
            ),
            1,
            "rejected the comment (422 Unprocessable Entity) while trying to create a comment: Validation Failed",
        ),
        (
            ["--pull-request", "7"],
            "good-token",
            (403, {"message": "Resource not accessible by integration"}),
            1,
            "pull-requests: write",
        ),
        (["--pull-request", "7"], None, None, 2, "no token: set GITHUB_TOKEN"),
    ],
)
def test_github_errors_are_clear_with_an_exit_code(
    github, report, args, token, fail, code, message
):
    github.fail = fail
    result = gh([*args, "--path", str(report)], github, token=token)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert github.comments == []


def test_bad_report_is_a_usage_error(github, tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"steps": []}')
    result = gh(["--pull-request", "7", "--path", str(bad)], github)
    assert result.exit_code == 2 and "not `cost projected --output json`" in " ".join(
        result.output.split()
    )
    assert github.requests == []


# -- GitLab ---------------------------------------------------------------------------


def test_gitlab_update_over_pages_with_ci_variables(gitlab, report):
    gitlab.seed("first", f"{marker()}\nold estimate", "looks good")
    env = {"CI_PROJECT_ID": "1234", "CI_MERGE_REQUEST_IID": "3"}
    result = gl(["--path", str(report)], gitlab, extra_env=env)
    assert result.exit_code == 0, result.output
    assert "comment updated: id 102" in result.output
    assert [(r["method"], r["path"]) for r in gitlab.requests] == [
        (
            "GET",
            "/api/v4/projects/1234/merge_requests/3/notes?per_page=100&page=1&sort=asc&order_by=created_at",
        ),
        (
            "GET",
            "/api/v4/projects/1234/merge_requests/3/notes?per_page=100&page=2&sort=asc&order_by=created_at",
        ),
        ("PUT", "/api/v4/projects/1234/merge_requests/3/notes/102"),
    ]
    put = gitlab.requests[-1]
    assert put["headers"]["PRIVATE-TOKEN"] == "good-token" and "Authorization" not in put["headers"]
    assert put["json"]["body"].startswith(marker() + "\n## FinFocus cost estimate")
    assert len(gitlab.comments) == 3


def test_gitlab_project_path_flags_and_delete_and_new(gitlab, report):
    gitlab.seed(f"{marker()}\nold", "human")
    result = gl(
        [
            "--project",
            "group/infra",
            "--merge-request",
            "3",
            "--path",
            str(report),
            "--behavior",
            "delete-and-new",
            "--api-url",
            gitlab.base,
        ],
        gitlab,
    )
    assert result.exit_code == 0, result.output
    writes = [(r["method"], r["path"]) for r in gitlab.requests if r["method"] != "GET"]
    assert writes == [
        ("DELETE", "/api/v4/projects/group%2Finfra/merge_requests/3/notes/101"),
        ("POST", "/api/v4/projects/group%2Finfra/merge_requests/3/notes"),
    ]
    assert [c["body"].split("\n")[0] for c in gitlab.comments] == ["human", marker()]


@pytest.mark.parametrize(
    ("project", "token", "code", "message"),
    [
        (
            "1234",
            "nope",
            1,
            "GitLab refused the token (401 Unauthorized) while trying to list the existing comments; check GITLAB_TOKEN",
        ),
        ("999", "good-token", 1, "project 999 merge request !3 was not found on"),
        ("1234", None, 2, "no token: set GITLAB_TOKEN"),
    ],
)
def test_gitlab_errors(gitlab, report, project, token, code, message):
    result = gl(
        ["--project", project, "--pull-request", "3", "--path", str(report)], gitlab, token=token
    )
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output


def test_the_installed_command_posts_through_the_stand_in(github, report):
    """The real `finfocus` entry point (a separate process) against the stand-in."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"GITHUB_TOKEN", "GH_TOKEN", "VAULT_ADDR"}
    }
    env.update(
        {
            "GITHUB_TOKEN": "good-token",
            "GITHUB_API_URL": github.base,
            "GITHUB_REPOSITORY": "acme/infra",
        }
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "finfocus.cli",
            "comment",
            "github",
            "--pull-request",
            "7",
            "--path",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("comment created: id 101")
    assert github.comments[0]["body"].startswith(marker() + "\n## FinFocus cost estimate")


def test_a_real_cost_projected_report_is_posted_as_its_markdown(github, tmp_path):
    """`cost projected --output json` as CI runs it, then the comment: the same markdown as
    `--output markdown` prints."""
    from finfocus.cli import app as cli

    plan = str(ROOT / "tests" / "fixtures" / "pulumi" / "aws-preview.json")
    env = {"FINFOCUS_HOME": str(tmp_path / "home")}
    doc = CliRunner().invoke(
        cli,
        ["cost", "projected", "--pulumi-json", plan, "--output", "json", "--no-plugins"],
        env=env,
    )
    assert doc.exit_code == 0, doc.output
    md = CliRunner().invoke(
        cli,
        ["cost", "projected", "--pulumi-json", plan, "--output", "markdown", "--no-plugins"],
        env=env,
    )
    assert md.exit_code == 0, md.output
    report = tmp_path / "report.json"
    report.write_text(doc.stdout)
    result = gh(["--pull-request", "7", "--path", str(report)], github)
    assert result.exit_code == 0, result.output
    assert github.comments[-1]["body"] == f"{marker()}\n{md.stdout.rstrip()}\n"
