#!/usr/bin/env bash
# Move the messages of a channel's dead-letter queue back to its source queue.
#
# Usage: infra/redrive-dlq.sh [options] CHANNEL
#   CHANNEL                email | sms | push | webhook | feedback | timers
#   -s, --stack NAME       CloudFormation stack (default: $CARTBACK_STACK or "cartback")
#   -r, --rate N           at most N messages per second (default: SQS decides, up to 500)
#   -n, --dry-run          show what would move, start nothing
#       --status           show the most recent move tasks of the DLQ and exit
#   -h, --help             this text
#
# Resolves both queue ARNs from the stack outputs (<Channel>QueueArn and
# <Channel>DeadLetterQueueArn), prints the DLQ depth, then starts an SQS
# message move task (StartMessageMoveTask) from the DLQ to the source queue.
# The move runs asynchronously in SQS; follow it with --status.
# Redrive is safe to repeat: each send is claimed once per cart, step and
# channel, so a message that was in fact delivered is skipped, not re-sent.
#
# timers: cart timers the checker could not handle (put in
# TimerDeadLetterQueue by the schedules' dead-letter config and by the
# checker's OnFailure destination) move to TimerQueue, which the checker
# consumes: each timer is checked again (a timer handled meanwhile, e.g.
# re-armed by the sweep, is a no-op). Both message shapes are understood.
# Fix the cause first (infra/tail-logs.sh), or the messages come straight back.
#
# Needs: aws CLI (v1 >= 1.29 or v2) with credentials for the stack's account;
# region from AWS_REGION / AWS_DEFAULT_REGION / the profile.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

stack="${CARTBACK_STACK:-cartback}"
rate=""
dry_run=false
status=false
channel=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    -s|--stack) stack="${2:?--stack needs a value}"; shift 2 ;;
    -r|--rate) rate="${2:?--rate needs a value}"; shift 2 ;;
    -n|--dry-run) dry_run=true; shift ;;
    --status) status=true; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "redrive-dlq: unknown option: $1" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -n "$channel" ]]; then echo "redrive-dlq: one CHANNEL only" >&2; exit 2; fi
      channel="$1"; shift ;;
  esac
done

case "$channel" in
  email) prefix=Email ;;
  sms) prefix=Sms ;;
  push) prefix=Push ;;
  webhook) prefix=Webhook ;;
  feedback) prefix=Feedback ;;
  timers) prefix=Timer ;;
  "") echo "redrive-dlq: CHANNEL is required" >&2; usage >&2; exit 2 ;;
  *) echo "redrive-dlq: unknown channel '$channel' (email, sms, push, webhook, feedback, timers)" >&2; exit 2 ;;
esac

if [[ -n "$rate" && ! "$rate" =~ ^[1-9][0-9]*$ ]]; then
  echo "redrive-dlq: --rate must be a positive integer" >&2
  exit 2
fi

command -v aws >/dev/null || { echo "redrive-dlq: the aws CLI is not on PATH" >&2; exit 127; }

output() { # output KEY: one stack output value, or fail
  local value
  value="$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text)"
  if [[ -z "$value" || "$value" == "None" ]]; then
    echo "redrive-dlq: stack '$stack' has no output $1" >&2
    exit 1
  fi
  printf '%s' "$value"
}

dlq_arn="$(output "${prefix}DeadLetterQueueArn")"
source_arn="$(output "${prefix}QueueArn")"

if $status; then
  aws sqs list-message-move-tasks --source-arn "$dlq_arn" --max-results 5 --output table
  exit 0
fi

dlq_url="$(output "${prefix}DeadLetterQueueUrl")"
depth="$(aws sqs get-queue-attributes --queue-url "$dlq_url" \
  --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
  --query "Attributes.[ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible]" \
  --output text)"
read -r visible in_flight <<<"$depth"

echo "stack:    $stack"
echo "from DLQ: $dlq_arn (~$visible visible, ~$in_flight in flight)"
echo "to queue: $source_arn"

if [[ "$visible" == "0" && "$in_flight" == "0" ]]; then
  echo "redrive-dlq: the $channel dead-letter queue is empty; nothing to do"
  exit 0
fi
if $dry_run; then
  echo "redrive-dlq: dry run; no move task started"
  exit 0
fi

args=(--source-arn "$dlq_arn" --destination-arn "$source_arn")
if [[ -n "$rate" ]]; then
  args+=(--max-number-of-messages-per-second "$rate")
fi
handle="$(aws sqs start-message-move-task "${args[@]}" --query TaskHandle --output text)"
echo "started move task: $handle"
echo "follow it with:    $0 --stack $stack --status $channel"
