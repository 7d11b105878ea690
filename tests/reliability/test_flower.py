import socket
import subprocess
import sys

import requests

from tests.processes import ROOT, process_environment, wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_flower_asks_for_the_basic_auth_from_the_environment(tmp_path):
    port = free_port()
    env = process_environment(FLOWER_BASIC_AUTH="ops:s3cret")
    log = (tmp_path / "flower.log").open("wb")
    flower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gpmas",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/"

        def status_without_credentials() -> int | None:
            try:
                return requests.get(url, timeout=2).status_code
            except requests.ConnectionError:
                return None

        status = wait_for(
            status_without_credentials, timeout=30, interval=0.2, message="Flower to answer"
        )
        assert status == 401
        assert requests.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert requests.get(url, auth=("ops", "s3cret"), timeout=5).status_code == 200
    finally:
        flower.terminate()
        flower.wait(10)
        log.close()
