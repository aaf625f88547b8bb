# Sourced by a study's resume script (Study 5's resume_sweep.sh, Study 6's resume.sh), from the main
# checkout. pinned_worktree DIR COMMIT: DIR becomes a detached git worktree at COMMIT unless it exists,
# one at any other commit is refused (code must not move under a sweep's runs), and its venv is
# installed (scripts/install.sh: quick when it is there already).
pinned_worktree() {
  local dir=$1 commit=$2
  [ -d "$dir" ] || git worktree add --detach "$dir" "$commit"
  if [ "$(git -C "$dir" rev-parse HEAD)" != "$(git rev-parse "$commit^{commit}")" ]; then
    echo "$(basename "$0"): $dir is not at SWEEP_COMMIT $commit" >&2
    return 1
  fi
  (cd "$dir" && ./scripts/install.sh)
}
