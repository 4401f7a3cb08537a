"""Pure parts of PR comments: request building, marker matching, what each behaviour sends,
where the target and token come from, and how an API error reads."""

from __future__ import annotations

import pytest

from finfocus.secrets import EnvironmentSecrets
from services.pricing.comment import (
    Action,
    Behavior,
    CommentError,
    Existing,
    GitHub,
    GitLab,
    comment_body,
    explain,
    github_target,
    gitlab_target,
    link_next,
    marker,
    ours,
    plan_actions,
    post_comment,
    report_markdown,
)


def test_github_requests_use_the_issue_comment_endpoints_and_headers():
    gh = GitHub("acme/infra", 42, "t0k", "https://ghe.example/api/v3/")
    listing = gh.list_comments()
    assert listing.method == "GET"
    assert (
        listing.url
        == "https://ghe.example/api/v3/repos/acme/infra/issues/42/comments?per_page=100&page=1"
    )
    assert listing.headers["Authorization"] == "Bearer t0k"
    assert listing.headers["Accept"] == "application/vnd.github+json"
    assert listing.headers["X-GitHub-Api-Version"] == "2022-11-28"
    create = gh.create("hello")
    assert (create.method, create.url, create.json) == (
        "POST",
        "https://ghe.example/api/v3/repos/acme/infra/issues/42/comments",
        {"body": "hello"},
    )
    update = gh.update(9, "b")
    assert (update.method, update.url, update.json) == (
        "PATCH",
        "https://ghe.example/api/v3/repos/acme/infra/issues/comments/9",
        {"body": "b"},
    )
    delete = gh.delete(9)
    assert (delete.method, delete.url, delete.json) == (
        "DELETE",
        "https://ghe.example/api/v3/repos/acme/infra/issues/comments/9",
        None,
    )


def test_gitlab_requests_encode_the_project_path_and_use_private_token():
    gl = GitLab("group/sub/proj", 3, "glpat", "https://git.example/api/v4")
    listing = gl.list_comments()
    assert listing.url == (
        "https://git.example/api/v4/projects/group%2Fsub%2Fproj/merge_requests/3/notes"
        "?per_page=100&page=1&sort=asc&order_by=created_at"
    )
    assert listing.headers["PRIVATE-TOKEN"] == "glpat"
    assert "Authorization" not in listing.headers
    assert gl.update(5, "x").method == "PUT"
    assert gl.update(5, "x").url.endswith("/projects/group%2Fsub%2Fproj/merge_requests/3/notes/5")
    nxt = gl.next_page(listing, {"x-next-page": "2"})
    assert nxt is not None and "page=2" in nxt.url
    assert gl.next_page(listing, {"x-next-page": ""}) is None


def test_link_header_next():
    link = '<https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last"'
    assert link_next(link) == "https://api.github.com/x?page=3"
    assert link_next('<https://api.github.com/x?page=1>; rel="prev"') is None
    assert link_next("") is None


def test_marker_matches_only_our_comments_of_the_same_tag():
    comments = [
        {"id": 1, "body": "LGTM"},
        {"id": 2, "body": comment_body("old", "finfocus")},
        {"id": 3, "body": comment_body("other stack", "prod")},
        {"id": 4, "body": "quoting <!-- finfocus-comment: finfocus --> later in the text"},
        {"id": 5, "body": comment_body("newer", "finfocus")},
    ]
    assert [c.id for c in ours(comments, "finfocus")] == [2, 5]
    assert [c.id for c in ours(comments, "prod")] == [3]
    assert comment_body("x\n\n").startswith(marker() + "\n")
    with pytest.raises(CommentError):
        marker("bad tag -->")


@pytest.mark.parametrize(
    ("behavior", "existing", "expected"),
    [
        (Behavior.UPDATE, [], [Action("create")]),
        (Behavior.UPDATE, [Existing(1, "a"), Existing(2, "b")], [Action("update", 2)]),
        (Behavior.UPDATE, [Existing(2, "BODY")], [Action("unchanged", 2)]),
        (Behavior.NEW, [Existing(1, "a")], [Action("create")]),
        (
            Behavior.DELETE_AND_NEW,
            [Existing(1, "a"), Existing(2, "b")],
            [Action("delete", 1), Action("delete", 2), Action("create")],
        ),
        (Behavior.DELETE_AND_NEW, [], [Action("create")]),
    ],
)
def test_plan_actions(behavior, existing, expected):
    assert plan_actions(behavior, existing, "BODY") == expected


def test_post_comment_new_does_not_list():
    sent = []

    def send(request):
        sent.append(request)
        return 201, {}, {"id": 77, "html_url": "https://github.com/a/b/pull/1#issuecomment-77"}

    outcome = post_comment(GitHub("a/b", 1, "t"), "## report", Behavior.NEW, send=send)
    assert [r.method for r in sent] == ["POST"]
    assert (outcome.action, outcome.comment_id, outcome.requests) == ("created", 77, 1)


def test_errors_read_clearly():
    gh = GitHub("a/b", 1, "t")
    e401 = explain(gh, 401, {"message": "Bad credentials"}, "create a comment")
    assert (
        "401" in str(e401)
        and "GITHUB_TOKEN" in str(e401)
        and "Bad credentials" in str(e401)
        and e401.exit_code == 1
    )
    e404 = explain(
        GitLab("g/p", 3, "t"),
        404,
        {"message": "404 Project Not Found"},
        "list the existing comments",
    )
    assert "project g/p merge request !3 was not found" in str(e404)
    e422 = explain(
        gh,
        422,
        {"message": "Validation Failed", "errors": [{"field": "body", "code": "custom"}]},
        "create a comment",
    )
    assert "422" in str(e422) and '"field": "body"' in str(e422)


def test_targets_from_ci_environment_and_secrets():
    env = {
        "GITHUB_REPOSITORY": "acme/infra",
        "GITHUB_REF": "refs/pull/12/merge",
        "GITHUB_API_URL": "https://ghe/api/v3",
    }
    secrets = EnvironmentSecrets({"FINFOCUS_SECRET_GITHUB_TOKEN": "from-secret"})
    gh = github_target(
        repo=None, pull_request=None, api_url=None, token=None, environ=env, secrets=secrets
    )
    assert (gh.repo, gh.number, gh.token, gh.api_url) == (
        "acme/infra",
        12,
        "from-secret",
        "https://ghe/api/v3",
    )
    gh = github_target(
        repo="x/y",
        pull_request=3,
        api_url=None,
        token=None,
        environ={**env, "GITHUB_TOKEN": "env"},
        secrets=secrets,
    )
    assert (gh.repo, gh.number, gh.token) == (
        "x/y",
        3,
        "env",
    )  # flags first, the environment before the secret
    with pytest.raises(CommentError, match="no token") as exc:
        github_target(
            repo="x/y", pull_request=3, api_url=None, token=None, environ={}, secrets=None
        )
    assert exc.value.exit_code == 2
    with pytest.raises(CommentError, match="--pull-request"):
        github_target(
            repo="x/y",
            pull_request=None,
            api_url=None,
            token="t",
            environ={"GITHUB_REF": "refs/heads/main"},
        )

    genv = {
        "CI_PROJECT_ID": "1234",
        "CI_MERGE_REQUEST_IID": "8",
        "CI_SERVER_URL": "https://git.example",
        "GITLAB_TOKEN": "g",
    }
    gl = gitlab_target(project=None, pull_request=None, api_url=None, token=None, environ=genv)
    assert (gl.project, gl.number, gl.token, gl.api_url) == (
        "1234",
        8,
        "g",
        "https://git.example/api/v4",
    )
    with pytest.raises(CommentError, match="no project"):
        gitlab_target(project=None, pull_request=1, api_url=None, token="t", environ={})


def test_report_markdown_renders_json_and_keeps_markdown():
    doc = {"summary": {"totalMonthly": "1"}, "resources": []}
    assert (
        report_markdown(
            '{"summary": {"totalMonthly": "1"}, "resources": []}', lambda d: f"rendered {d == doc}"
        )
        == "rendered True"
    )
    assert report_markdown("## already markdown\n", lambda d: "no") == "## already markdown\n"
    with pytest.raises(CommentError, match="not `cost projected"):
        report_markdown('{"other": 1}', lambda d: "")
    with pytest.raises(CommentError, match="not valid JSON"):
        report_markdown("{nope", lambda d: "")


def test_a_report_longer_than_a_comment_is_cut_at_a_line_with_a_note():
    rows = "\n".join(
        f"| `r{i}` | `aws:ec2/instance:Instance` | create | m5.large | 70.08 |" for i in range(2000)
    )
    body = comment_body("## FinFocus cost estimate\n\n" + rows)
    assert len(body) <= 65536
    assert body.startswith(marker() + "\n## FinFocus cost estimate")
    assert body.endswith("the rest is in the job's report file._\n")
    kept = body.split("\n\n_The report")[0]
    assert kept.endswith(" 70.08 |")  # whole rows only
    assert comment_body("short") == f"{marker()}\nshort\n"
