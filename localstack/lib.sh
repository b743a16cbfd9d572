# shellcheck shell=bash disable=SC2034
# Shared settings for localstack/{up,down,env}. Sourced, not executed.
# Every value can be overridden from the environment.

LS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
LS_RUN="$LS_DIR/.run"
LS_VENV="$LS_DIR/.venv"

LS_HOST="${EVENTIDE_LOCAL_HOST:-127.0.0.1}"
LS_MOTO_PORT="${EVENTIDE_LOCAL_PORT:-4566}"
LS_KINESIS_PORT="${EVENTIDE_KINESIS_PORT:-4567}"
# kinesis-mock always starts a TLS listener too; it is put next to the plain one.
LS_KINESIS_TLS_PORT="${EVENTIDE_KINESIS_TLS_PORT:-4568}"
LS_REGION="${EVENTIDE_LOCAL_REGION:-us-east-1}"
LS_TIMEOUT="${EVENTIDE_LOCAL_TIMEOUT:-60}"
# Delay of kinesis-mock's asynchronous state changes (CREATING/UPDATING -> ACTIVE).
LS_KINESIS_DELAY="${EVENTIDE_KINESIS_DELAY:-100ms}"

ls_moto_url()    { echo "http://$LS_HOST:$LS_MOTO_PORT"; }
ls_kinesis_url() { echo "http://$LS_HOST:$LS_KINESIS_PORT"; }

# Health probes: exit 0 when the service answers.
ls_moto_ok()    { curl -fsS -m 2 -o /dev/null "$(ls_moto_url)/moto-api/" 2>/dev/null; }
ls_kinesis_ok() { curl -fsS -m 2 -o /dev/null "$(ls_kinesis_url)/healthcheck" 2>/dev/null; }

# ls_pid NAME -> prints the recorded pid if that process is alive.
ls_pid() {
  local f="$LS_RUN/$1.pid" pid
  [[ -f $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: the command line must still be ours.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(ls_cmd_marker "$1")" || return 1
  echo "$pid"
}

ls_cmd_marker() {
  case $1 in
    moto) echo "moto_server" ;;
    kinesis) echo "kinesis-local/main.js" ;;
  esac
}

ls_log_tail() { # NAME
  local f="$LS_RUN/$1.log"
  if [[ -f $f ]]; then
    echo "---- last 30 lines of $f ----" >&2
    tail -n 30 "$f" >&2
    echo "----" >&2
  fi
}
