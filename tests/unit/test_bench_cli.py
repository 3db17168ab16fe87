"""`provisioner bench` refuses bad flags at once, with one line naming the flag."""

from __future__ import annotations

import pytest

from provisioner.cli import main


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--runners", "0"], "--runners"),
        (["--runners", "10,abc"], "--runners"),
        (["--modes", "sequential,turbo"], "--modes"),
        (["--github-latency-ms", "-1"], "--github-latency-ms"),
        (["--concurrency", "0"], "--concurrency"),
        (["--workers", "0"], "--workers"),
        (["--secondary-max-concurrent", "0"], "--secondary-max-concurrent"),
        (["--json", "/no/such/dir/out.json"], "--json"),
        (["--tenants", "0"], "--tenants"),
        (["--tenants", "two"], "--tenants"),
        (["--tenants", "3", "--runners", "2,10"], "--runners"),
        (["--tenants", "2", "--modes", "sequential"], "--modes"),
        (["--tenants", "2", "--jobs-burst", "10"], "--jobs-burst"),
        (["--github-profile", "gitlab.com"], "--github-profile"),
        (["--github-rate-limit", "0"], "--github-rate-limit"),
        # 20,000 calls to create and remove them: more than a token's 5,000 an hour.
        (["--runners", "10000", "--modes", "parallel"], "--github-rate-limit"),
        (["--runners", "1000", "--github-rate-limit", "3000"], "--github-rate-limit"),
    ],
)
def test_bad_flag_is_refused_with_one_line(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert flag in err
