#!/usr/bin/env bash
# Run each fuzz harness for a fixed time; fail on any crash, leak, timeout,
# out-of-memory or sanitizer report.  Called by `make -C fuzz run`.
#
#   fuzz/run.sh SECONDS "EXTRA LIBFUZZER FLAGS" TARGET...
#
# Each harness starts from its committed corpus (fuzz/corpus/<name>/) plus
# what earlier runs found (build/work/<name>/, not committed); reproducers
# of failures land in build/artifacts/<name>/.  One line per harness:
# runs, execs/s, coverage (edges) and features, new inputs.
set -uo pipefail

cd "$(dirname "$0")"
secs=${1:?seconds}
extra=${2:-}
shift 2
[ $# -gt 0 ] || set -- value etag template key message

failed=()
for t in "$@"; do
    bin=build/fuzz_$t
    [ -x "$bin" ] || { echo "fuzz: $bin is not built" >&2; exit 2; }
    work=build/work/$t
    art=build/artifacts/$t
    log=build/logs/$t.log
    mkdir -p "$work" "$art" build/logs
    dict=()
    [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
    # -timeout: a single input taking 10 s is a hang; -rss_limit_mb: a
    # runaway allocation; -error_exitcode/-timeout_exitcode: distinct codes.
    # shellcheck disable=SC2086
    "$bin" "$work" "corpus/$t" "${dict[@]}" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$art/" \
        -error_exitcode=77 -timeout_exitcode=78 $extra >"$log" 2>&1
    rc=$?
    runs=$(grep -a '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    eps=$(grep -a '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
    last=$(grep -a -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz_%-9s ok    %ss, %s runs, %s exec/s, cov %s, ft %s, corpus %s\n' \
            "$t" "$secs" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
    else
        printf 'fuzz_%-9s FAILED (exit %s); log: fuzz/%s\n' "$t" "$rc" "$log"
        grep -a -E 'ERROR: |check failed|\*\*\* |SUMMARY|Test unit written' "$log" | head -n 20
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]} (reproduce: fuzz/build/fuzz_NAME fuzz/build/artifacts/NAME/<file>)"
    exit 1
fi
