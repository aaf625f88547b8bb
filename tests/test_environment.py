"""results.json's ``environment``: the source revision of smart_tune's code, from a git checkout only,
never a failure or a wait (git repositories of their own in temporary folders)."""

import subprocess

import pytest

from smart_tune import environment


def git(repo, *args):
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_the_source_is_the_checkout_commit_and_whether_tracked_files_changed(tmp_path):
    repo = tmp_path / "repo"
    package = repo / "src" / "pkg"
    package.mkdir(parents=True)
    git(repo, "init", "-q")
    (package / "__init__.py").write_text("")
    (repo / "README.md").write_text("one\n")
    # A package that git does not track: installed into a virtual environment inside a project's checkout.
    assert environment.source_revision(package) is None

    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    commit = git(repo, "rev-parse", "HEAD")
    assert environment.source_revision(package) == {"commit": commit, "dirty": False}
    (repo / "notes.txt").write_text("untracked")  # not code the run ran
    assert environment.source_revision(package) == {"commit": commit, "dirty": False}
    (repo / "README.md").write_text("two\n")  # a tracked file anywhere in the repository
    assert environment.source_revision(package) == {"commit": commit, "dirty": True}


@pytest.mark.parametrize(
    "failure",
    [
        FileNotFoundError("git"),
        subprocess.TimeoutExpired("git", 5),
        PermissionError("git"),
        ValueError("odd"),
    ],
)
def test_without_git_or_a_checkout_the_source_is_unknown_never_an_error(tmp_path, monkeypatch, failure):
    assert environment.source_revision(tmp_path) is None  # an installed wheel: no repository

    def fails(*args, **kwargs):
        raise failure

    monkeypatch.setattr(environment.subprocess, "run", fails)
    assert environment.source_revision() is None


def test_git_is_given_a_time_limit(monkeypatch):
    seen = {}

    def run(command, **kwargs):
        seen.setdefault("timeouts", []).append(kwargs.get("timeout"))
        raise subprocess.TimeoutExpired(command, kwargs.get("timeout"))

    monkeypatch.setattr(environment.subprocess, "run", run)
    assert environment.source_revision() is None
    assert seen["timeouts"] == [environment.GIT_TIMEOUT_S] and 0 < environment.GIT_TIMEOUT_S <= 10


def test_capture_records_the_source_of_the_running_code():
    source = environment.capture()["source"]
    assert source == environment.running_source()
    if source is not None:  # this checkout's commit (None when the tests run against an installed wheel)
        assert len(source["commit"]) == 40 and isinstance(source["dirty"], bool)
