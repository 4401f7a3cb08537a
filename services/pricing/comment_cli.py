"""`finfocus comment github|gitlab`: post or update the cost report on a pull/merge request.

The REST requests and the choice of what to send live in `services.pricing.comment`; this
module reads the report, finds the target and the token, and prints the outcome.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from services.pricing.comment import Behavior, CommentError

PATH_HELP = (
    "The report: `cost projected --output json` (rendered as markdown) or `--output markdown`"
)
BEHAVIOR_HELP = "update: edit our comment in place (default); new: add one each run; delete-and-new: delete ours, then add one"
TAG_HELP = (
    "Tells our comments apart when several reports go to one pull request (e.g. one per stack)"
)


def _markdown(path: Path) -> str:
    from services.pricing.cli.projected import markdown_report
    from services.pricing.comment import report_markdown

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommentError(f"cannot read {path}: {exc}", 2) from None
    return report_markdown(text, markdown_report)


def _run(make_target, path: Path, behavior: Behavior, tag: str) -> None:
    from finfocus.cli.output import fail
    from finfocus.secrets import secrets_from_environment
    from services.pricing.comment import post_comment

    try:
        markdown = _markdown(path)
        target = make_target(environ=os.environ, secrets=_secrets(secrets_from_environment))
        outcome = post_comment(target, markdown, behavior, tag=tag)
    except CommentError as exc:
        fail(str(exc), exc.exit_code)
    where = f" {outcome.url}" if outcome.url else ""
    deleted = f" (deleted {outcome.deleted} earlier)" if outcome.deleted else ""
    typer.echo(f"comment {outcome.action}: id {outcome.comment_id}{deleted}{where}")


def _secrets(factory):
    """The secrets provider, or None when it cannot be reached (the environment still counts)."""
    try:
        return factory()
    except Exception:  # noqa: BLE001 - a Vault that is down must not hide GITHUB_TOKEN's absence
        return None


def register(app: typer.Typer) -> None:
    """Add `finfocus comment github|gitlab` to the `finfocus` app."""
    comment = typer.Typer(
        help="Post the cost report as a pull-request (GitHub) or merge-request (GitLab) comment.",
        no_args_is_help=True,
    )
    app.add_typer(comment, name="comment")

    @comment.command("github")
    def github(
        path: Path = typer.Option(..., "--path", help=PATH_HELP, dir_okay=False),
        pull_request: int | None = typer.Option(
            None, "--pull-request", min=1, help="Pull request number (default: from GITHUB_REF)"
        ),
        repo: str | None = typer.Option(
            None, "--repo", help="owner/name (default: GITHUB_REPOSITORY)"
        ),
        behavior: Behavior = typer.Option(Behavior.UPDATE, "--behavior", help=BEHAVIOR_HELP),
        tag: str = typer.Option("finfocus", "--tag", help=TAG_HELP),
        api_url: str | None = typer.Option(
            None,
            "--api-url",
            help="API base (default: GITHUB_API_URL or https://api.github.com; GitHub Enterprise: https://HOST/api/v3)",
        ),
    ) -> None:
        """Post or update one comment on a GitHub pull request (token: GITHUB_TOKEN, GH_TOKEN or the github-token secret)."""
        from services.pricing.comment import github_target

        _run(
            lambda environ, secrets: github_target(
                repo=repo,
                pull_request=pull_request,
                api_url=api_url,
                token=None,
                environ=environ,
                secrets=secrets,
            ),
            path,
            behavior,
            tag,
        )

    @comment.command("gitlab")
    def gitlab(
        path: Path = typer.Option(..., "--path", help=PATH_HELP, dir_okay=False),
        pull_request: int | None = typer.Option(
            None,
            "--pull-request",
            "--merge-request",
            min=1,
            help="Merge request IID (default: CI_MERGE_REQUEST_IID)",
        ),
        project: str | None = typer.Option(
            None, "--project", help="Project ID or group/name (default: CI_PROJECT_ID)"
        ),
        behavior: Behavior = typer.Option(Behavior.UPDATE, "--behavior", help=BEHAVIOR_HELP),
        tag: str = typer.Option("finfocus", "--tag", help=TAG_HELP),
        api_url: str | None = typer.Option(
            None,
            "--api-url",
            help="API base (default: CI_API_V4_URL, CI_SERVER_URL/api/v4 or https://gitlab.com/api/v4)",
        ),
    ) -> None:
        """Post or update one note on a GitLab merge request (token: GITLAB_TOKEN or the gitlab-token secret)."""
        from services.pricing.comment import gitlab_target

        _run(
            lambda environ, secrets: gitlab_target(
                project=project,
                pull_request=pull_request,
                api_url=api_url,
                token=None,
                environ=environ,
                secrets=secrets,
            ),
            path,
            behavior,
            tag,
        )
