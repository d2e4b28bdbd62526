"""Sharing results through DVC remotes: a local folder, and S3 served by moto on 127.0.0.1.

One tiny pipeline is reproduced once (tests/pipeline_repo.py), pushed, and fresh `git clone`s
pull it: they must reuse the pushed mixtures, extracted sound and models, regenerate only what
dvc.yaml marks `push: false` (byte-identical, so nothing downstream runs), and recompute only
what was not pulled. Remote failures (closed port, refused credentials) must fail loudly and
leave the local workspace and cache as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pipeline_repo import copy_repo_with_cache, git_commit, reproduced_repo, sh, stages_run

pytestmark = pytest.mark.timeout(3600)  # the shared tiny repro takes minutes on 2 busy cores

NOT_PUSHED = {"data/corpus", "data/noise"}  # dvc.yaml: push: false (cheap to regenerate exactly)
MUST_PUSH = {"data/mix", "data/mse", "data/snr/model", "data/models/conformer_pretrained",
             "data/models/dense_ae/raw", "data/models/stgram_mfn/mse", "data/scores/dense_ae/raw.csv"}


def locked_outs(repo: Path) -> dict[str, str]:
    """Every cached output in dvc.lock with its md5 (outputs kept in git are left out)."""
    in_git = sh(["git", "ls-files"], repo).stdout.split()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if not any(name == out["path"] or name.startswith(out["path"] + "/") for name in in_git)}


def object_key(md5: str) -> str:
    """Where DVC 3 stores an object below a remote's root."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def changed_paths(repo: Path) -> set[str]:
    """Every path `dvc status` reports as changed (deps and outs of all stages)."""
    status = json.loads(sh(["dvc", "status", "--json"], repo).stdout or "{}")
    return {path for changes in status.values() for change in changes if isinstance(change, dict)
            for kind in ("changed deps", "changed outs") for path in change.get(kind, {})}


def tree_digest(folder: Path) -> dict[str, str]:
    """Relative path -> md5 of every file below ``folder``."""
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def clone(origin: Path, dest: Path) -> Path:
    sh(["git", "clone", "-q", str(origin), str(dest)], origin.parent)
    return dest


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """The reproduced tiny repository with a default local-folder remote, pushed and committed."""
    repo = copy_repo_with_cache(reproduced_repo(tmp_path_factory), tmp_path_factory.mktemp("origin"))
    remote = tmp_path_factory.mktemp("remote")
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], repo)
    git_commit(repo, "remote")
    sh(["dvc", "push"], repo)
    return repo


def test_push_skips_only_regenerable_inputs(origin: Path):
    remote = Path(sh(["dvc", "config", "remote.shared.url"], origin).stdout.strip())
    outs = locked_outs(origin)
    assert NOT_PUSHED | MUST_PUSH <= set(outs), sorted(outs)
    pushed = {path for path, md5 in outs.items() if (remote / object_key(md5)).is_file()}
    assert pushed == set(outs) - NOT_PUSHED
    assert (origin / ".dvc" / "cache" / object_key(outs["data/corpus"])).is_file()  # still cached locally


def test_fresh_clone_reuses_pushed_results(origin: Path, tmp_path: Path):
    repo = clone(origin, tmp_path / "clone")
    sh(["dvc", "pull", "--allow-missing"], repo)
    assert (repo / "data" / "mse").is_dir() and (repo / "data" / "models" / "dense_ae" / "raw").is_dir()
    assert not (repo / "data" / "corpus").exists()
    assert changed_paths(repo) == NOT_PUSHED

    assert stages_run(sh(["dvc", "repro", "--allow-missing"], repo).stdout) == set()
    ran = stages_run(sh(["dvc", "repro"], repo).stdout)
    assert ran == {"corpus", "noise"}  # regenerated; same bytes, so manifest, mix, ... are reused
    assert changed_paths(repo) == set()
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""  # dvc.lock unchanged


def test_partial_pull_recomputes_only_what_is_missing(origin: Path, tmp_path: Path):
    repo = clone(origin, tmp_path / "clone")
    sh(["dvc", "pull", "--allow-missing", "--with-deps", "snr_predict"], repo)
    assert (repo / "data" / "mix").is_dir() and not (repo / "data" / "mse").exists()
    ran = stages_run(sh(["dvc", "repro", "mse"], repo).stdout)
    assert ran == {"corpus", "noise", "mse"}
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""  # mse recomputed byte for byte
    assert tree_digest(repo / "data" / "mse") == tree_digest(origin / "data" / "mse")


# --- S3 (dvc-s3) against a moto server on 127.0.0.1 ------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited:\n{log.read_text()[-4000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not listen on 127.0.0.1:{port} within {seconds} s")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A moto S3/IAM server enforcing credentials; yields (endpoint, key id, secret, bucket).

    Its first 4 requests are unauthenticated: they create an IAM user allowed s3:*, its access
    key and the bucket; every later request must be signed with that key.
    """
    pytest.importorskip("dvc_s3", reason="dvc-s3 not installed (pip install -e '.[dev]')")
    pytest.importorskip("moto.server", reason="moto[server] not installed (pip install -e '.[dev]')")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("w") as log_file:  # a file, not a pipe: the request log must never block the server
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, log)
        endpoint = f"http://127.0.0.1:{port}"
        boot = {"endpoint_url": endpoint, "region_name": "us-east-1",
                "aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="dvc")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="dvc", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dvc")["AccessKey"]
        boto3.client("s3", **boot).create_bucket(Bucket="asd-cache")
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"], "asd-cache"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def local_only_network(monkeypatch, tmp_path: Path):
    """Keep DVC's S3 traffic on 127.0.0.1 and short: no proxies, no AWS profile, few retries."""
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_PROFILE",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))


def add_s3_remote(repo: Path, name: str, endpoint: str, bucket: str, key_id: str, secret: str) -> None:
    """Remote URL and endpoint in .dvc/config (committed); credentials in .dvc/config.local."""
    sh(["dvc", "remote", "add", name, f"s3://{bucket}/{name}"], repo)
    sh(["dvc", "remote", "modify", name, "endpointurl", endpoint], repo)
    sh(["dvc", "remote", "modify", "--local", name, "access_key_id", key_id], repo)
    sh(["dvc", "remote", "modify", "--local", name, "secret_access_key", secret], repo)


def test_s3_push_then_fresh_clone_reuses(origin: Path, s3_server, local_only_network, tmp_path: Path):
    endpoint, key_id, secret, bucket = s3_server
    repo = copy_repo_with_cache(origin, tmp_path / "origin")
    add_s3_remote(repo, "s3", endpoint, bucket, key_id, secret)
    git_commit(repo, "s3 remote")
    assert secret not in sh(["git", "show", "HEAD:.dvc/config"], repo).stdout  # never committed
    sh(["dvc", "push", "-r", "s3"], repo)

    import boto3
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=key_id, aws_secret_access_key=secret)
    listing = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="s3/")
    keys = {item["Key"] for page in listing for item in page.get("Contents", [])}
    outs = locked_outs(repo)
    assert {f"s3/{object_key(outs[p])}" for p in MUST_PUSH} <= keys
    assert not {f"s3/{object_key(outs[p])}" for p in NOT_PUSHED} & keys

    fresh = clone(repo, tmp_path / "clone")
    assert not (fresh / ".dvc" / "config.local").exists()
    no_key = sh(["dvc", "pull", "-r", "s3", "--allow-missing"], fresh, check=False)
    assert no_key.returncode != 0 and "credentials" in no_key.stderr  # not in git, not guessed
    sh(["dvc", "remote", "modify", "--local", "s3", "access_key_id", key_id], fresh)
    sh(["dvc", "remote", "modify", "--local", "s3", "secret_access_key", secret], fresh)
    sh(["dvc", "pull", "-r", "s3", "--allow-missing"], fresh)
    assert changed_paths(fresh) == NOT_PUSHED
    assert stages_run(sh(["dvc", "repro", "--allow-missing"], fresh).stdout) == set()
    assert tree_digest(fresh / "data" / "mse") == tree_digest(origin / "data" / "mse")


@pytest.mark.parametrize("failure", ["closed port", "refused credentials"])
def test_s3_failures_are_reported_and_lose_nothing(origin: Path, s3_server, local_only_network,
                                                   tmp_path: Path, failure: str, monkeypatch):
    endpoint, key_id, secret, bucket = s3_server
    if failure == "closed port":
        endpoint, expected = f"http://127.0.0.1:{_free_port()}", "could not connect"
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # a retried refusal only adds backoff: pull 27 s -> 1 s
    else:
        secret, expected = "not-the-secret", "forbidden"
    repo = copy_repo_with_cache(origin, tmp_path / "origin")
    add_s3_remote(repo, "broken", endpoint, bucket, key_id, secret)
    git_commit(repo, "broken remote")
    data_before = tree_digest(repo / "data")
    cache_before = tree_digest(repo / ".dvc" / "cache")

    push = sh(["dvc", "push", "-r", "broken"], repo, check=False)
    assert push.returncode != 0
    assert "ERROR" in push.stderr + push.stdout and expected in (push.stderr + push.stdout).lower()
    assert tree_digest(repo / "data") == data_before
    assert tree_digest(repo / ".dvc" / "cache") == cache_before
    assert changed_paths(repo) == set()

    fresh = clone(repo, tmp_path / "clone")
    sh(["dvc", "remote", "modify", "--local", "broken", "access_key_id", key_id], fresh)
    sh(["dvc", "remote", "modify", "--local", "broken", "secret_access_key", secret], fresh)
    pull = sh(["dvc", "pull", "-r", "broken"], fresh, check=False)
    assert pull.returncode != 0
    assert expected in (pull.stderr + pull.stdout).lower() and "failed to pull" in pull.stderr.lower()
    assert not (fresh / "data" / "mix").exists()  # nothing half-checked-out
    assert sh(["git", "status", "--porcelain"], fresh).stdout == ""
