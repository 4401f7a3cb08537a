"""The offline engine's reading of questions: periods, names, intents, and refusals (no I/O)."""

from __future__ import annotations

from datetime import date

import pytest

from services.api.assistant.dates import find_period
from services.api.assistant.offline import build_sql
from services.api.assistant.safety import check
from services.api.assistant.understand import NotUnderstood, understand
from services.api.assistant.vocab import Vocabulary

TODAY = date(2026, 10, 15)  # a Thursday
VOCAB = Vocabulary(
    providers=["AWS", "Google Cloud", "Microsoft"],
    services=[
        "AmazonEC2",
        "AmazonS3",
        "BigQuery",
        "Cloud Storage",
        "Storage",
        "Amazon Elastic Compute Cloud",
    ],
    accounts={"111111111111": "payments-prod", "sub-azure-0001": "emea-web"},
    regions=["us-east-1", "europe-west1"],
    tags={"team": {"payments", "data"}, "env": {"prod", "staging"}, "note": {"drop table x"}},
    forecast_dims=["", "account,provider,service"],
    currencies=["USD"],
)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("yesterday", "2026-10-14", "2026-10-15"),
        ("last month", "2026-09-01", "2026-10-01"),
        ("this month", "2026-10-01", "2026-10-16"),
        ("month to date", "2026-10-01", "2026-10-16"),
        ("last week", "2026-10-05", "2026-10-12"),
        ("last 7 days", "2026-10-08", "2026-10-15"),
        ("q3", "2026-07-01", "2026-10-01"),
        ("q4", "2026-10-01", "2027-01-01"),  # the latest Q4 that has begun
        ("q4 2026", "2026-10-01", "2027-01-01"),
        ("last quarter", "2026-07-01", "2026-10-01"),
        ("since june", "2026-06-01", "2026-10-16"),
        ("in november", "2025-11-01", "2025-12-01"),  # the latest November that has begun
        ("this year", "2026-01-01", "2026-10-16"),
        ("last year", "2025-01-01", "2026-01-01"),
        ("from 2026-09-01 to 2026-09-15", "2026-09-01", "2026-09-15"),
        ("on 2026-09-03", "2026-09-03", "2026-09-04"),
    ],
)
def test_periods_resolve_against_today(text, start, end):
    period, _ = find_period(text, TODAY)
    assert period is not None
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)


def test_ec2_finds_every_name_the_bills_use_for_it():
    plan = understand("what did we spend on ec2 last month", VOCAB, TODAY)
    assert sorted(plan.scope.services) == ["Amazon Elastic Compute Cloud", "AmazonEC2"]


def test_longest_name_wins_cloud_storage_is_not_storage():
    plan = understand("cloud storage cost yesterday", VOCAB, TODAY)
    assert plan.scope.services == ["Cloud Storage"]


def test_account_names_and_tags_resolve_to_their_ids_and_keys():
    plan = understand("how much did the payments team spend in emea-web last week", VOCAB, TODAY)
    assert plan.scope.accounts == ["sub-azure-0001"] and plan.scope.tags == {"team": ["payments"]}


def test_typos_are_corrected_only_near_known_words():
    plan = understand("how much did we spned on bigquery yesturday", VOCAB, TODAY)
    assert plan.intent == "spend" and plan.scope.services == ["BigQuery"]
    assert plan.period is not None and plan.period.start == date(2026, 10, 14)


def test_unknown_words_are_reported_not_guessed():
    with pytest.raises(NotUnderstood, match="kubernetes"):
        understand("what did kubernetes cost last month", VOCAB, TODAY)


def test_week_over_week_compares_the_last_seven_days_with_the_seven_before():
    plan = understand("which service grew the most week over week", VOCAB, TODAY)
    assert plan.intent == "compare" and plan.dimension == "service" and plan.limit == 1
    assert plan.period and plan.previous
    assert (plan.previous.start, plan.previous.end, plan.period.end) == (
        date(2026, 10, 1),
        date(2026, 10, 8),
        date(2026, 10, 15),
    )


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("largest anomaly", "anomalies"),
        ("projected month end spend", "forecast"),
        ("which budgets are at risk", "budgets"),
        ("how much could we save", "recommendations"),
        ("how much have we saved", "savings"),
        ("unpriced lines this month", "unpriced"),
        ("spend without a team tag", "untagged"),
        ("daily cost last week", "trend"),
        ("top 5 resources yesterday", "top"),
    ],
)
def test_intents(question, intent):
    assert understand(question, VOCAB, TODAY).intent == intent


def test_a_hostile_tag_value_is_matched_as_data_and_quoted():
    plan = understand("cost by note last month", VOCAB, TODAY)
    assert plan.dimension == "tag:note"
    checked = check(build_sql(plan, VOCAB, TODAY))
    assert checked.sql.startswith("SELECT") and "DROP" not in checked.sql.upper()


def test_names_with_quotes_are_escaped():
    from services.api.assistant.offline import lit

    sql = f"SELECT 1 FROM pricing.v_cost_lines WHERE service_name = {lit(chr(39) + '; DROP TABLE x; --')}"
    checked = check(sql)
    assert checked.sql.endswith("= '''; DROP TABLE x; --'")


@pytest.mark.parametrize(
    "question",
    [
        "since june 0000",
        "from 2026-13-45 to 2026-14-01",
        "last 999 months",
        "q4 0000",
        "in june 9999",
        "top 999 services",
        "'; DROP TABLE x; --",
        "",
        "   ",
        "ℌ𝔬𝔴 𝔪𝔲𝔠𝔥",
        "last ٣ days",
    ],
)
def test_odd_questions_are_read_or_refused_never_crash(question):
    try:
        plan = understand(question, VOCAB, TODAY)
    except (NotUnderstood, ValueError, OverflowError):
        return
    check(build_sql(plan, VOCAB, TODAY))
    check(build_sql(plan, VOCAB, TODAY, aggregate=True))


@pytest.mark.parametrize(
    ("question", "view"),
    [
        ("what did we spend on ec2 last month", "pricing.v_daily_costs"),
        ("top 3 services by cost this year", "pricing.v_daily_costs"),
        ("cost by region in aws last quarter", "pricing.v_daily_costs"),
        ("monthly trend since june", "pricing.v_daily_costs"),
        ("which service grew the most this month vs last month", "pricing.v_daily_costs"),
        ("top 5 resources last month", "pricing.v_cost_lines"),
        ("cost by team last month", "pricing.v_cost_lines"),
        ("cost by sku last month", "pricing.v_cost_lines"),
    ],
)
def test_the_aggregate_is_read_only_for_the_columns_it_keeps(question, view):
    checked = check(build_sql(understand(question, VOCAB, TODAY), VOCAB, TODAY, aggregate=True))
    assert checked.views == (view,)
    assert check(build_sql(understand(question, VOCAB, TODAY), VOCAB, TODAY)).views == (
        "pricing.v_cost_lines",
    )


def test_any_text_is_read_or_refused_never_crashes():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    words = st.sampled_from(
        [
            "spend",
            "ec2",
            "last",
            "month",
            "top",
            "3",
            "by",
            "team",
            "since",
            "june",
            "vs",
            "week",
            "over",
            "anomalies",
            "q3",
            "2026-09-01",
            "to",
            "budget",
            "'",
            ";",
        ]
    )

    @settings(max_examples=150, deadline=None, database=None)
    @given(st.one_of(st.text(max_size=80), st.lists(words, max_size=8).map(" ".join)))
    def probe(question):
        try:
            plan = understand(question, VOCAB, TODAY)
        except (NotUnderstood, ValueError, OverflowError):
            return
        check(build_sql(plan, VOCAB, TODAY))
        check(build_sql(plan, VOCAB, TODAY, aggregate=True))

    probe()
