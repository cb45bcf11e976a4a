#!/usr/bin/env bash
# Follow /crm-events with curl, one JSON frame per line on stdout, resuming after every end.
#
#   examples/curl/follow.sh kind=deal where=deal.stage:won | jq .
#
# Arguments are query parameters (docs/stream.md, "Parameters"). CRM_EVENTS_URL is the stream
# (default http://localhost:9010/crm-events), CRM_EVENTS_TOKEN a JWT for SSE_AUTH_MODE=jwt,
# LAST_EVENT_ID a resume id to start from. When the stream ends (the server's `reconnect`
# frame, a restart, a dropped connection) it waits the server's `retry:` and reconnects with
# Last-Event-ID: the id of the last frame it printed, or of the last heartbeat.
set -euo pipefail

url=${CRM_EVENTS_URL:-http://localhost:9010/crm-events}
last_id=${LAST_EVENT_ID:-}
retry_ms=3000
query=()
for parameter in "$@"; do query+=(--data-urlencode "$parameter"); done

stream() {
  local headers=(-H "Accept: text/event-stream")
  [[ -n $last_id ]] && headers+=(-H "Last-Event-ID: $last_id")
  [[ -n ${CRM_EVENTS_TOKEN:-} ]] && headers+=(-H "Authorization: Bearer $CRM_EVENTS_TOKEN")
  # -N: print as it arrives; -f: a refusal (4xx JSON on stderr via -S) is not read as a stream.
  curl -sSfN -G "${headers[@]}" "${query[@]}" "$url"
}

while true; do
  id='' event='' data=''
  while IFS= read -r line; do
    case $line in
      '')  # a frame ends: print it, then remember its id (never before it was printed)
        if [[ -n $data && -z $event ]]; then printf '%s\n' "$data"; fi
        if [[ -n $id ]]; then last_id=$id; fi
        id='' event='' data='' ;;
      'id: '*) id=${line#id: } ;;
      'event: '*) event=${line#event: } ;;  # named copies (event: gap) repeat an unnamed frame
      'data: '*) data=${line#data: } ;;     # the service writes each frame's JSON on one line
      'retry: '*) retry_ms=${line#retry: } ;;
    esac
  done < <(stream || true)
  sleep "$((retry_ms / 1000)).$(printf '%03d' $((retry_ms % 1000)))"
done
