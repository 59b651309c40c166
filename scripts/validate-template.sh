#!/usr/bin/env bash
# Validate the AWS SAM template offline.
#
# Usage: scripts/validate-template.sh [TEMPLATE]      (default: template.yaml)
#
# Runs, from the repository root:
#   1. cfn-lint TEMPLATE                     zero errors and zero warnings
#   2. sam validate                          SAM translation (catches what
#      sam validate --lint                   cfn-lint lets through), then lint
#   3. checkov -f TEMPLATE --framework cloudformation --quiet --compact
#      plus a check that every checkov suppression in the template
#      (Metadata: checkov: skip: [{id, comment}]) carries a written reason.
# No AWS account or network is needed: sam gets us-east-1 and dummy
# credentials, checkov skips its online guideline download.
#
# Tools live in a virtual environment at ${CARTBACK_TOOLS_VENV:-.venv-tools}
# (relative to the repository root; scripts/python-tools.sh fills the same
# one). If cfn-lint, sam or checkov is missing there, the venv is created if
# needed and the missing tools are installed from PyPI at the versions pinned
# below (override with CFN_LINT_VERSION, SAM_CLI_VERSION, CHECKOV_VERSION);
# tools already present are used as they are, and their versions printed.
#
# Quiet on success: one summary line per tool. Exits non-zero on any failure
# and prints that tool's full output.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

template="${1:-template.yaml}"
venv="${CARTBACK_TOOLS_VENV:-.venv-tools}"
python="${PYTHON:-python3}"

# Pinned so that a new upstream rule cannot turn a green tree red overnight;
# bump deliberately (and fix what the new versions report).
cfn_lint_version="${CFN_LINT_VERSION:-1.58.0}"
sam_cli_version="${SAM_CLI_VERSION:-1.170.0}"
checkov_version="${CHECKOV_VERSION:-3.2.459}"

if [[ ! -f "$template" ]]; then
  echo "validate-template: no such template: $template" >&2
  exit 2
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT

fail() { # fail TOOL: print the captured output and stop
  echo "validate-template: $1 FAILED" >&2
  cat "$out" >&2
  exit 1
}

# --- tools -------------------------------------------------------------------
missing=()
[[ -x "$venv/bin/cfn-lint" ]] || missing+=("cfn-lint==${cfn_lint_version}")
[[ -x "$venv/bin/sam" ]] || missing+=("aws-sam-cli==${sam_cli_version}")
[[ -x "$venv/bin/checkov" ]] || missing+=("checkov==${checkov_version}")
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "validate-template: installing ${missing[*]} into $venv (first run takes a few minutes)"
  if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv" >"$out" 2>&1 || fail "python venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" >"$out" 2>&1 \
    || fail "pip install"
fi
versions="$("$venv/bin/python" -c '
import importlib.metadata as m
print(" ".join(m.version(p) for p in ("cfn-lint", "aws-sam-cli", "checkov")))')" || fail "tool versions"
read -r cfn_lint_version sam_cli_version checkov_version <<<"$versions"

# Offline, non-interactive settings for the tools. Dummy credentials only
# for this process tree: nothing here talks to AWS.
export SAM_CLI_TELEMETRY=0
export SAM_CLI_CONTACT_TRACKING=0
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIDVALIDATEONLY0000 AWS_SECRET_ACCESS_KEY=validate-template-dummy-secret
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN

# --- 1. cfn-lint ---------------------------------------------------------------
# Any finding fails: errors, warnings and (if enabled) informational ones.
if ! "$venv/bin/cfn-lint" --format parseable -- "$template" >"$out" 2>&1 || [[ -s "$out" ]]; then
  fail "cfn-lint"
fi
echo "cfn-lint $cfn_lint_version: $template clean (0 errors, 0 warnings)"

# --- 2. sam validate -----------------------------------------------------------
"$venv/bin/sam" validate --template-file "$template" >"$out" 2>&1 || fail "sam validate"
"$venv/bin/sam" validate --lint --template-file "$template" >"$out" 2>&1 || fail "sam validate --lint"
echo "sam validate $sam_cli_version: $template is a valid SAM template (translation and --lint)"

# --- 3. checkov ----------------------------------------------------------------
# Every suppression must say why: id plus a comment of a real sentence.
"$venv/bin/python" - "$template" >"$out" 2>&1 <<'PY' || fail "checkov suppression reasons"
import sys
from cfnlint.decode import decode

template, matches = decode(sys.argv[1])
if matches:
    for m in matches:
        print(m)
    sys.exit(1)
bad = []
count = 0
for name, res in (template.get("Resources") or {}).items():
    skips = ((res.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
    for skip in skips:
        count += 1
        if not isinstance(skip, dict) or not str(skip.get("id", "")).startswith("CKV"):
            bad.append(f"{name}: suppression without a CKV id: {skip!r}")
        elif len(str(skip.get("comment") or "").split()) < 8:
            bad.append(f"{name}: {skip['id']} suppressed without a reason (comment of 8+ words)")
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
PY

if ! "$venv/bin/checkov" -f "$template" --framework cloudformation --quiet --compact >"$out" 2>&1; then
  fail "checkov"
fi
summary="$(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out" || true)"
if [[ -z "$summary" ]]; then
  fail "checkov (no scan summary: did it scan $template?)"
fi
echo "checkov $checkov_version: ${summary} (each skip carries a reason in the template)"
