#!/usr/bin/env bash
# Follow (or print) the CloudWatch logs of one Cartback function.
#
# Usage: infra/tail-logs.sh [options] FUNCTION
#   FUNCTION               ingest | checker | send-email | send-sms | send-push | send-webhook | feedback
#                          | api (the HTTP API access log)
#   -s, --stack NAME       CloudFormation stack (default: $CARTBACK_STACK or "cartback")
#   -S, --since DURATION   start this long ago, e.g. 10m, 2h, 1d (default: 10m)
#   -f, --filter PATTERN   CloudWatch Logs filter pattern, e.g. '"ERROR"' or '{ $.status = "5*" }'
#       --no-follow        print what is there and exit instead of following
#   -h, --help             this text
#
# Each function logs to its own log group, created by the stack (see
# template.yaml: <Function>LogGroup, not /aws/lambda/<name>). The group is
# resolved from the stack, then followed with `aws logs tail` (AWS CLI v2) or,
# when only AWS CLI v1 is installed, `sam logs --cw-log-group`.
# Logs carry no email addresses, phone numbers or tokens (the functions
# redact them), but they are still operational data: do not paste them
# into public issues.
#
# Needs: aws CLI v2, or aws CLI v1 plus the AWS SAM CLI; credentials for the
# stack's account; region from AWS_REGION / AWS_DEFAULT_REGION / the profile.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

stack="${CARTBACK_STACK:-cartback}"
since="10m"
filter=""
follow=true
fn=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    -s|--stack) stack="${2:?--stack needs a value}"; shift 2 ;;
    -S|--since) since="${2:?--since needs a value}"; shift 2 ;;
    -f|--filter) filter="${2:?--filter needs a value}"; shift 2 ;;
    --no-follow) follow=false; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "tail-logs: unknown option: $1" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -n "$fn" ]]; then echo "tail-logs: one FUNCTION only" >&2; exit 2; fi
      fn="$1"; shift ;;
  esac
done

case "$fn" in
  ingest) logical=IngestLogGroup ;;
  checker) logical=CheckerLogGroup ;;
  send-email) logical=SendEmailLogGroup ;;
  send-sms) logical=SendSmsLogGroup ;;
  send-push) logical=SendPushLogGroup ;;
  send-webhook) logical=SendWebhookLogGroup ;;
  feedback) logical=FeedbackLogGroup ;;
  api) logical=ApiAccessLogGroup ;;
  "") echo "tail-logs: FUNCTION is required" >&2; usage >&2; exit 2 ;;
  *) echo "tail-logs: unknown function '$fn' (ingest, checker, send-email, send-sms, send-push, send-webhook, feedback, api)" >&2; exit 2 ;;
esac

if [[ ! "$since" =~ ^[0-9]+[smhdw]$ ]]; then
  echo "tail-logs: --since must look like 30s, 10m, 2h, 1d or 1w" >&2
  exit 2
fi

command -v aws >/dev/null || { echo "tail-logs: the aws CLI is not on PATH" >&2; exit 127; }

group="$(aws cloudformation describe-stack-resource --stack-name "$stack" \
  --logical-resource-id "$logical" \
  --query StackResourceDetail.PhysicalResourceId --output text)"
if [[ -z "$group" || "$group" == "None" ]]; then
  echo "tail-logs: stack '$stack' has no resource $logical" >&2
  exit 1
fi
echo "tail-logs: $fn -> log group $group (since $since)" >&2

# AWS CLI v2 has `aws logs tail`; v1 does not.
if aws logs tail help >/dev/null 2>&1; then
  args=("$group" --since "$since" --format short)
  [[ -n "$filter" ]] && args+=(--filter-pattern "$filter")
  $follow && args+=(--follow)
  exec aws logs tail "${args[@]}"
fi

if command -v sam >/dev/null; then
  # sam logs takes relative times as "10mins ago" style strings.
  n="${since%?}"
  case "${since: -1}" in
    s) start="$n seconds ago" ;;
    m) start="$n minutes ago" ;;
    h) start="$n hours ago" ;;
    d) start="$n days ago" ;;
    w) start="$((n * 7)) days ago" ;;
  esac
  args=(--cw-log-group "$group" --start-time "$start")
  [[ -n "$filter" ]] && args+=(--filter "$filter")
  $follow && args+=(--tail)
  exec sam logs "${args[@]}"
fi

echo "tail-logs: needs AWS CLI v2 (aws logs tail) or the AWS SAM CLI (sam logs)" >&2
exit 127
