"""`provisioner bench --jobs-burst N` takes a job count and refuses anything else in one line."""

from __future__ import annotations

import pytest

from provisioner.cli import build_parser, main


def test_jobs_burst_is_parsed_and_off_by_default() -> None:
    parser = build_parser()
    assert parser.parse_args(["bench", "--jobs-burst", "200"]).jobs_burst == 200
    assert parser.parse_args(["bench"]).jobs_burst is None


@pytest.mark.parametrize("value", ["0", "-3", "many", "5001"])
def test_bad_jobs_burst_is_refused_with_one_line(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--jobs-burst", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--jobs-burst" in err
