#!/usr/bin/env bash
# Re-renders runbooks/*.md: every runbook's plan as pgha renders it for the lab cluster (from
# responses recorded from a real cluster, so the output is deterministic). A unit test fails
# when these files and the rendering differ; run this after changing a runbook, then review
# the diff like any other change to a procedure.
set -euo pipefail
cd "$(dirname "$0")/.."
PGHA_UPDATE_RUNBOOKS=1 cargo test --quiet --lib runbooks::tests::committed_runbooks_match_the_rendering_for_the_lab
git status --short runbooks/
