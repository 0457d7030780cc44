"""sources.yaml: a complete CSV source loads; mistakes are refused under the source's name."""

from __future__ import annotations

import pytest

from accord.sources.config import SourcesConfigError, load_sources

COMPLETE = """
sources:
  - name: hr
    kind: csv
    csv: {path: /srv/exports/hr, pattern: "workers-*.csv", delimiter: ";", encoding: cp1252}
    key: employee_number
    mappings:
      user_name: lower(row.first) + "." + lower(row.last)
      given_name: first
      family_name: last
      email: mail
      employee_number: employee_number
      hire_date: hired
      attributes.site: site
    status: {column: status, active_values: [A, Active]}
    correlation: [{by: employee_number}, {by: email}]
    safety: {max_deactivations_percent: 2, max_deletions_percent: 1}
    schedule: "0 2 * * *"
"""


def test_a_complete_csv_source_loads() -> None:
    (source,) = load_sources(COMPLETE).sources
    assert source.csv is not None
    assert source.csv.delimiter == ";"
    assert [rule.by for rule in source.correlation] == ["employee_number", "email"]
    assert source.safety.max_deletions_percent == 1


def test_safety_defaults_to_five_percent() -> None:
    text = COMPLETE.replace(
        "    safety: {max_deactivations_percent: 2, max_deletions_percent: 1}\n", ""
    )
    (source,) = load_sources(text).sources
    assert source.safety.max_deactivations_percent == 5
    assert source.safety.max_deletions_percent == 5


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("delimiter:", "delimeter:", "csv.delimeter: Extra inputs are not permitted"),
        ("family_name: last", "surname: last", "'surname' is no profile field"),
        ("encoding: cp1252", "encoding: klingon", "unknown encoding"),
        ('schedule: "0 2 * * *"', "schedule: nightly", "no cron line"),
        ("kind: csv", "kind: sql", "a sql source needs exactly the `sql` options"),
        ("active_values: [A, Active]", "active_values: []", "needs `active_values`"),
        ("{by: email}", "{by: phone}", "correlation.1.by"),
        ('schedule: "0 2 * * *"', 'schedule: "0 2 * * *"\n    watch: true', "not both"),
    ],
)
def test_mistakes_are_refused_with_the_source_name(old: str, new: str, message: str) -> None:
    assert old in COMPLETE
    with pytest.raises(SourcesConfigError) as refused:
        load_sources(COMPLETE.replace(old, new))
    assert any(m.startswith("source 'hr': ") and message in m for m in refused.value.messages)


def test_user_name_must_be_mapped() -> None:
    text = COMPLETE.replace('      user_name: lower(row.first) + "." + lower(row.last)\n', "")
    with pytest.raises(SourcesConfigError, match="mappings need `user_name`"):
        load_sources(text)


def test_source_names_are_unique() -> None:
    body = COMPLETE.split("sources:\n", 1)[1]
    with pytest.raises(SourcesConfigError, match="unique: hr"):
        load_sources("sources:\n" + body + body)
