"""Pull-request comments with the projected-cost report: GitHub and GitLab REST APIs.

The request building and the decision of what to do (`plan_actions`) are pure; `post_comment`
is the only function doing HTTP. One comment per pull request (and `tag`) is recognised by a
hidden HTML marker on its first line, so later runs can update or replace it:

- `update` (default): edit our latest comment in place (nothing is sent when its body is
  already the same); create one when there is none.
- `new`: always add a comment.
- `delete-and-new`: delete every comment of ours, then add one (the newest is at the bottom).

GitHub: issue comments endpoints (`/repos/{owner}/{repo}/issues/{n}/comments`,
`/repos/{owner}/{repo}/issues/comments/{id}`), `Authorization: Bearer`, `Accept:
application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`; pages follow the `Link` header.
GitLab: merge request notes (`/projects/{id}/merge_requests/{iid}/notes[/{note_id}]`),
`PRIVATE-TOKEN`; pages follow `X-Next-Page` (or `Link`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"
GITHUB_API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 100  # 10,000 comments: a pull request with more is not worth looping on
USER_AGENT = "finfocus-comment"


class Behavior(StrEnum):
    UPDATE = "update"
    NEW = "new"
    DELETE_AND_NEW = "delete-and-new"


class CommentError(Exception):
    """A comment could not be posted; `exit_code` 2 = usage (fix the command), 1 = the API refused."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def marker(tag: str = "finfocus") -> str:
    """The hidden first line that marks our comments (one per tag and pull request)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", tag):
        raise CommentError(f"--tag {tag!r}: use letters, digits, '.', '_', '-' or '/'", 2)
    return f"<!-- finfocus-comment: {tag} -->"


#: the longest comment each API accepts (GitHub: 65,536 characters; GitLab: 1,000,000)
GITHUB_MAX_CHARS = 65536
GITLAB_MAX_CHARS = 1_000_000


def comment_body(markdown: str, tag: str = "finfocus", limit: int = GITHUB_MAX_CHARS) -> str:
    """The marker line and the report, cut at a line boundary (with a note) when longer than `limit`."""
    body = f"{marker(tag)}\n{markdown.rstrip()}\n"
    if len(body) <= limit:
        return body
    note = (
        "\n\n_The report is longer than a comment may be: the rest is in the job's report file._\n"
    )
    cut = body[: limit - len(note)]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut + note


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]
    json: dict[str, Any] | None = None


@dataclass(frozen=True)
class Existing:
    id: int
    body: str


@dataclass(frozen=True)
class Action:
    kind: str  # create, update, delete, unchanged
    comment_id: int | None = None


def plan_actions(behavior: Behavior, ours: list[Existing], body: str) -> list[Action]:
    """What to do, given our existing comments (oldest first) and the new body."""
    if behavior is Behavior.NEW:
        return [Action("create")]
    if behavior is Behavior.DELETE_AND_NEW:
        return [*(Action("delete", c.id) for c in ours), Action("create")]
    if not ours:
        return [Action("create")]
    latest = ours[-1]
    if latest.body.strip() == body.strip():
        return [Action("unchanged", latest.id)]
    return [Action("update", latest.id)]


@dataclass(frozen=True)
class GitHub:
    """Requests of the GitHub REST API (github.com or GitHub Enterprise Server's `/api/v3`)."""

    repo: str  # owner/name
    number: int
    token: str
    api_url: str = GITHUB_API
    name: str = field(default="GitHub", init=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+", self.repo):
            raise CommentError(f"repository {self.repo!r} is not owner/name", 2)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "User-Agent": USER_AGENT,
        }

    def _base(self) -> str:
        return f"{self.api_url.rstrip('/')}/repos/{self.repo}/issues"

    def list_comments(self) -> Request:
        query = urlencode({"per_page": PER_PAGE, "page": 1})
        return Request("GET", f"{self._base()}/{self.number}/comments?{query}", self.headers)

    def create(self, body: str) -> Request:
        return Request(
            "POST", f"{self._base()}/{self.number}/comments", self.headers, {"body": body}
        )

    def update(self, comment_id: int, body: str) -> Request:
        return Request(
            "PATCH", f"{self._base()}/comments/{comment_id}", self.headers, {"body": body}
        )

    def delete(self, comment_id: int) -> Request:
        return Request("DELETE", f"{self._base()}/comments/{comment_id}", self.headers)

    def next_page(self, current: Request, headers: Mapping[str, str]) -> Request | None:
        url = link_next(headers.get("link", ""))
        return Request("GET", url, self.headers) if url else None

    @staticmethod
    def html_url(answer: Any) -> str:
        return answer.get("html_url", "") if isinstance(answer, dict) else ""


@dataclass(frozen=True)
class GitLab:
    """Requests of the GitLab REST API v4 (gitlab.com or self-managed)."""

    project: str  # numeric id or full path (group/sub/name)
    number: int  # the merge request's iid
    token: str
    api_url: str = GITLAB_API
    name: str = field(default="GitLab", init=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token, "Accept": "application/json", "User-Agent": USER_AGENT}

    def _base(self) -> str:
        project = quote(self.project, safe="")
        return f"{self.api_url.rstrip('/')}/projects/{project}/merge_requests/{self.number}/notes"

    def list_comments(self, page: int = 1) -> Request:
        query = urlencode(
            {"per_page": PER_PAGE, "page": page, "sort": "asc", "order_by": "created_at"}
        )
        return Request("GET", f"{self._base()}?{query}", self.headers)

    def create(self, body: str) -> Request:
        return Request("POST", self._base(), self.headers, {"body": body})

    def update(self, comment_id: int, body: str) -> Request:
        return Request("PUT", f"{self._base()}/{comment_id}", self.headers, {"body": body})

    def delete(self, comment_id: int) -> Request:
        return Request("DELETE", f"{self._base()}/{comment_id}", self.headers)

    def next_page(self, current: Request, headers: Mapping[str, str]) -> Request | None:
        nxt = (headers.get("x-next-page") or "").strip()
        if nxt.isdigit():
            return self.list_comments(int(nxt))
        url = link_next(headers.get("link", ""))
        return Request("GET", url, self.headers) if url else None

    @staticmethod
    def html_url(answer: Any) -> str:
        return ""


Platform = GitHub | GitLab


def link_next(link: str) -> str | None:
    """The `rel="next"` URL of an RFC 8288 `Link` header."""
    for part in link.split(","):
        m = re.match(r"\s*<([^>]+)>\s*;(.*)", part)
        if m and re.search(r'rel="?([^";]*\s)?next(\s[^";]*)?"?', m.group(2)):
            return m.group(1)
    return None


def ours(comments: list[dict], tag: str) -> list[Existing]:
    """Our comments (the marker on the first line), oldest first."""
    mark = marker(tag)
    found = []
    for c in comments:
        body = c.get("body") if isinstance(c, dict) else None
        if (
            isinstance(body, str)
            and body.lstrip().startswith(mark)
            and isinstance(c.get("id"), int)
        ):
            found.append(Existing(c["id"], body))
    return found


def explain(platform: Platform, status: int, answer: Any, what: str) -> CommentError:
    """A clear message for an API error status."""
    detail = ""
    if isinstance(answer, dict):
        detail = str(answer.get("message") or answer.get("error") or "")
        errors = answer.get("errors")
        if errors:
            detail = f"{detail} {json.dumps(errors)}".strip()
    detail = f": {detail[:300]}" if detail else ""
    where = (
        f"{platform.repo} pull request #{platform.number}"
        if isinstance(platform, GitHub)
        else f"project {platform.project} merge request !{platform.number}"
    )
    token = "GITHUB_TOKEN" if isinstance(platform, GitHub) else "GITLAB_TOKEN"
    if status == 401:
        msg = f"{platform.name} refused the token (401 Unauthorized) while trying to {what}; check {token}"
    elif status == 403:
        msg = (
            f"{platform.name} forbids this token to {what} on {where} (403 Forbidden); it needs write access to "
            + (
                "pull requests/issues (`permissions: pull-requests: write`)"
                if isinstance(platform, GitHub)
                else "the project (api scope)"
            )
        )
    elif status == 404:
        msg = f"{where} was not found on {platform.api_url} (404), or the token cannot see it"
    elif status == 422:
        msg = f"{platform.name} rejected the comment (422 Unprocessable Entity) while trying to {what}"
    elif status == 429:
        msg = f"{platform.name} rate limit reached (429) while trying to {what}; retry later"
    else:
        msg = f"{platform.name} answered HTTP {status} while trying to {what} on {where}"
    return CommentError(msg + detail, 1)


@dataclass
class Outcome:
    action: str  # created, updated, unchanged (plus deleted N before created)
    comment_id: int | None
    url: str = ""
    deleted: int = 0
    requests: int = 0


Send = Callable[[Request], tuple[int, Mapping[str, str], Any]]


def post_comment(
    platform: Platform,
    markdown: str,
    behavior: Behavior = Behavior.UPDATE,
    *,
    tag: str = "finfocus",
    send: Send | None = None,
) -> Outcome:
    """Post or update our comment; `send` does one HTTP request (default: httpx)."""
    send = send or _httpx_send()
    body = comment_body(
        markdown, tag, GITHUB_MAX_CHARS if isinstance(platform, GitHub) else GITLAB_MAX_CHARS
    )
    count = 0

    def call(request: Request, what: str, ok: tuple[int, ...]) -> tuple[Mapping[str, str], Any]:
        nonlocal count
        count += 1
        status, headers, answer = send(request)
        if status not in ok:
            raise explain(platform, status, answer, what)
        return headers, answer

    existing: list[Existing] = []
    if behavior is not Behavior.NEW:
        request: Request | None = platform.list_comments()
        comments: list[dict] = []
        pages = 0
        while request is not None and pages < MAX_PAGES:
            headers, answer = call(request, "list the existing comments", (200,))
            if not isinstance(answer, list):
                raise CommentError(
                    f"{platform.name} answered the comment list with {type(answer).__name__}, not a list",
                    1,
                )
            comments.extend(answer)
            pages += 1
            request = platform.next_page(request, headers) if answer else None
        existing = ours(comments, tag)

    outcome = Outcome("unchanged", None)
    for action in plan_actions(behavior, existing, body):
        if action.kind == "delete":
            assert action.comment_id is not None
            call(
                platform.delete(action.comment_id),
                f"delete comment {action.comment_id}",
                (200, 202, 204),
            )
            outcome.deleted += 1
        elif action.kind == "unchanged":
            outcome.comment_id = action.comment_id
        elif action.kind == "update":
            assert action.comment_id is not None
            _, answer = call(
                platform.update(action.comment_id, body),
                f"update comment {action.comment_id}",
                (200,),
            )
            outcome.action, outcome.comment_id, outcome.url = (
                "updated",
                action.comment_id,
                platform.html_url(answer),
            )
        else:
            _, answer = call(platform.create(body), "create a comment", (200, 201))
            new_id = answer.get("id") if isinstance(answer, dict) else None
            outcome.action, outcome.comment_id, outcome.url = (
                "created",
                new_id,
                platform.html_url(answer),
            )
    outcome.requests = count
    return outcome


def _httpx_send(timeout: float = 30.0) -> Send:
    import httpx

    def send(request: Request) -> tuple[int, Mapping[str, str], Any]:
        try:
            response = httpx.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                json=request.json,
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise CommentError(f"cannot reach {request.url.split('?')[0]}: {exc}", 1) from None
        try:
            answer = response.json() if response.content else None
        except ValueError:
            answer = {"message": response.text[:300]}
        return response.status_code, response.headers, answer

    return send


# --- where the target and the token come from --------------------------------------------


def github_target(
    *,
    repo: str | None,
    pull_request: int | None,
    api_url: str | None,
    token: str | None,
    environ: Mapping[str, str],
    secrets=None,
) -> GitHub:
    """GitHub from flags, then the Actions environment (GITHUB_REPOSITORY, GITHUB_REF,
    GITHUB_API_URL), the token from GITHUB_TOKEN / GH_TOKEN or the `github-token` secret."""
    repo = repo or environ.get("GITHUB_REPOSITORY")
    if not repo:
        raise CommentError(
            "no repository: pass --repo OWNER/NAME (GITHUB_REPOSITORY is not set)", 2
        )
    if pull_request is None:
        m = re.fullmatch(r"refs/pull/(\d+)/(merge|head)", environ.get("GITHUB_REF", ""))
        if not m:
            raise CommentError(
                "no pull request: pass --pull-request N (GITHUB_REF is not refs/pull/N/merge)", 2
            )
        pull_request = int(m.group(1))
    token = (
        token
        or environ.get("GITHUB_TOKEN")
        or environ.get("GH_TOKEN")
        or _secret(secrets, "github-token")
    )
    if not token:
        raise CommentError(
            "no token: set GITHUB_TOKEN (or the github-token secret, FINFOCUS_SECRET_GITHUB_TOKEN)",
            2,
        )
    return GitHub(
        repo, pull_request, token, (api_url or environ.get("GITHUB_API_URL") or GITHUB_API)
    )


def gitlab_target(
    *,
    project: str | None,
    pull_request: int | None,
    api_url: str | None,
    token: str | None,
    environ: Mapping[str, str],
    secrets=None,
) -> GitLab:
    """GitLab from flags, then GitLab CI's environment (CI_PROJECT_ID, CI_MERGE_REQUEST_IID,
    CI_API_V4_URL or CI_SERVER_URL), the token from GITLAB_TOKEN or the `gitlab-token` secret."""
    project = project or environ.get("CI_PROJECT_ID") or environ.get("CI_PROJECT_PATH")
    if not project:
        raise CommentError("no project: pass --project ID|GROUP/NAME (CI_PROJECT_ID is not set)", 2)
    if pull_request is None:
        iid = environ.get("CI_MERGE_REQUEST_IID", "")
        if not iid.isdigit():
            raise CommentError(
                "no merge request: pass --pull-request N (CI_MERGE_REQUEST_IID is not set)", 2
            )
        pull_request = int(iid)
    token = token or environ.get("GITLAB_TOKEN") or _secret(secrets, "gitlab-token")
    if not token:
        raise CommentError(
            "no token: set GITLAB_TOKEN (or the gitlab-token secret, FINFOCUS_SECRET_GITLAB_TOKEN)",
            2,
        )
    if not api_url:
        server = environ.get("CI_SERVER_URL")
        api_url = environ.get("CI_API_V4_URL") or (
            f"{server.rstrip('/')}/api/v4" if server else GITLAB_API
        )
    return GitLab(project, pull_request, token, api_url)


def _secret(secrets, key: str) -> str | None:
    if secrets is None:
        return None
    found = secrets.get(key)
    return found.reveal() if found is not None else None


def report_markdown(text: str, render: Callable[[dict], str]) -> str:
    """The comment's markdown from a report file: a `cost projected --output json` document
    is rendered with `render`; anything else that is not JSON is taken as markdown."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CommentError(f"the report is not valid JSON: {exc}", 2) from None
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("summary"), dict)
            or not isinstance(doc.get("resources"), list)
        ):
            raise CommentError(
                "the report is JSON but not `cost projected --output json` (no summary/resources)",
                2,
            )
        try:
            return render(doc)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise CommentError(
                f"the report misses a field of `cost projected --output json`: {exc}", 2
            ) from None
    if not stripped:
        raise CommentError("the report is empty", 2)
    return text
