# Sourced by the scripts that start recalld themselves (chaos.sh, schemathesis.sh).

# recalld_url OUT LOG: waits (10 s at most) for the line `recalld: listening on URL` that
# recalld prints on its stdout (the file OUT) and prints URL; prints recalld's log (the file
# LOG) on stderr and fails when the line does not come.
recalld_url() {
  local out=$1 log=$2 url i
  for i in $(seq 100); do
    url=$(sed -n 's/^recalld: listening on //p' "$out")
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    sleep 0.1
  done
  echo "recalld did not start; its log:" >&2
  cat "$log" >&2
  return 1
}
