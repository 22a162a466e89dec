# Shared by scripts/k8s/build.sh and scripts/pulumi/build.sh (sourced): the Go build
# environment, a log, and a one-line failure report.
#
#   gobuild_init "k8s build" "$LOG" "$TOOLCHAIN" "$JOBS"
#   mark; "${GO[@]}" build ... >>"$LOG" 2>&1 || fail some/module v1.2.3

# gobuild_init WHAT LOG TOOLCHAIN JOBS: empty LOG, static builds with the given toolchain
# and `go build -p JOBS`, modules resolved as needed, no VCS stamping; GO runs niced.
gobuild_init() {
    GOBUILD_WHAT="$1"
    LOG="$2"
    : >"$LOG"
    export CGO_ENABLED=0 GOTOOLCHAIN="$3" GOWORK=off
    export GOFLAGS="-p=$4 -buildvcs=false -mod=mod"
    GO=(nice -n 19 go)
    LOG_MARK=0
}

# mark: the log lines before this step; fail reads only what the step wrote after.
mark() { LOG_MARK="$(wc -l <"$LOG")"; }

# fail MODULE VERSION: print one line naming the module and the step's first error; exit 1.
fail() {
    local err
    err="$(tail -n +"$((LOG_MARK + 1))" "$LOG" | grep -vE '^go: (downloading|upgraded|added|finding) ' |
        grep -m1 -iE 'error|cannot|undefined|not found|missing|invalid|unknown|forbidden|go: ' || true)"
    [ -n "$err" ] || err="$(tail -n1 "$LOG")"
    echo "$GOBUILD_WHAT: FAILED $1@$2: $(echo "${err:-see $LOG}" | sed 's/^[[:space:]]*//') (log: $LOG)" >&2
    exit 1
}
