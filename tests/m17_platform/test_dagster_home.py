"""The instance config m17 writes turns Dagster's run monitoring on, also in a home an
older m17 wrote, and leaves a user's own dagster.yaml alone."""

import dagster as dg
import yaml

from m17_platform import cli

OLD_M17_YAML = "# written by m17: a local instance for `m17 demo` and `m17 dev`\ntelemetry:\n  enabled: false\n"


def _home(tmp_path, monkeypatch, text: str | None):
    home = tmp_path / "home"
    home.mkdir()
    if text is not None:
        (home / "dagster.yaml").write_text(text)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert cli._dagster_home() == home
    return home


def test_a_new_home_gets_run_monitoring_and_no_telemetry(tmp_path, monkeypatch):
    home = _home(tmp_path, monkeypatch, None)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["telemetry"] == {"enabled": False}
    assert config["run_monitoring"]["enabled"] is True
    assert {"start_timeout_seconds", "cancel_timeout_seconds", "poll_interval_seconds"} <= set(config["run_monitoring"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == config["run_monitoring"]["start_timeout_seconds"]


def test_a_home_written_by_an_older_m17_gets_the_new_settings(tmp_path, monkeypatch):
    home = _home(tmp_path, monkeypatch, OLD_M17_YAML)
    assert (home / "dagster.yaml").read_text() == cli.DAGSTER_YAML
    assert cli._dagster_home() == home and (home / "dagster.yaml").read_text() == cli.DAGSTER_YAML


def test_a_users_own_dagster_yaml_is_left_untouched(tmp_path, monkeypatch):
    own = "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\n"
    home = _home(tmp_path, monkeypatch, own)
    assert (home / "dagster.yaml").read_text() == own
