#!/usr/bin/env bash
# Mutation testing of the core with the DST as the test (issue 21; docs/DST.md, "Mutation
# testing"). cargo-mutants makes the mutants of runtime/src/node/ and runtime/src/wire.rs
# (.cargo/mutants.toml) and applies them one at a time in this tree; for each one this
# script runs the DST, and the unit tests only when the DST passed, so every mutant ends
# "killed by the DST", "killed by the unit tests only", "survived", a timeout or unviable.
#
#   tools/mutants.sh [cargo-mutants options]   run, then print the report
#   tools/mutants.sh report [DIR]              the report of a finished run (DIR: mutants.out)
#   tools/mutants.sh schemata [--out DIR] [--only ID,..] [-- LIST OPTIONS]
#                                              every mutant in one build (tools/schemata:
#                                              mutation schemata), the same DST shapes and
#                                              unit tests; DIR [mutants.schemata] holds
#                                              outcomes.tsv, left-out.tsv, report.txt; a
#                                              stopped run goes on where it stopped
#   tools/mutants.sh left-out [DIR]            the mutants a schemata run left out (a
#                                              constant context, a struct field, rejected
#                                              by the compiler), one build each
#   tools/mutants.sh --help
#
# Narrow a run with cargo-mutants' own options (--file adds to the configured globs, it
# does not narrow): `--shard 0/10 --sharding round-robin` (a tenth, spread over every
# file), `--re '^runtime/src/node/fencing\.rs:'` (one file), `--list` (no run).
#
# Environment (defaults in brackets):
#   MUTANTS_DST_SEEDS      DST seeds per mutant and shape, 0..N-1 [200]
#   MUTANTS_DST_SHAPES     the DST's shapes, `;`-separated option lists, run in turn until
#                          one fails [";--acks;--acked;--nodes 3;--nodes 3 --witness": the
#                          pair, its event acknowledgements, acked outputs, a group of
#                          three, a group of two and a witness]
#   MUTANTS_DST_THREADS    the DST's --threads [2]
#   MUTANTS_PROFILE        dev or release: the profile the DST and the tests are built in [dev]
#   MUTANTS_DST_TIMEOUT_S  one DST run [120]; MUTANTS_UNIT_TIMEOUT_S: build and run of the
#                          unit tests [300]; MUTANTS_TIMEOUT_S: cargo-mutants' own bound
#                          on a mutant's test phase, a backstop [900]
#
# How: cargo-mutants runs `$CARGO test --no-run ...` (build) and `$CARGO test ...` (test)
# for each mutant and has no option for another test command. This script sets CARGO to
# a copy of itself; called back as cargo, it builds the simulator for the build phase and
# runs the DST and the unit tests for the test phase, printing one "twinloop-mutants
# verdict:" line into the mutant's log, and hands every other cargo command to the real
# cargo. The mutants are tested in place (--in-place: the warm target/ is reused,
# incremental builds take seconds), so do not edit or commit runtime/src while a run is
# going. Exit code: cargo-mutants' (0 all killed, 2 some survived, 3 timeouts, 4 the
# unmutated tree fails; https://mutants.rs/exit-codes.html).
set -uo pipefail

root=${TWINLOOP_MUTANTS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
self="$root/tools/mutants.sh"
marker="twinloop-mutants verdict:"

die() {
    echo "tools/mutants.sh: $*" >&2
    exit 2
}

# Called back by cargo-mutants in place of cargo.
as_cargo() {
    local real=$TWINLOOP_MUTANTS_REAL_CARGO
    # cargo itself, build scripts and the tests see the real cargo.
    export CARGO=$real
    unset TWINLOOP_MUTANTS_SHIM
    [ "${1:-}" = test ] || exec "$real" "$@"

    local no_run=0 arg
    for arg in "$@"; do [ "$arg" = --no-run ] && no_run=1; done
    local profile=${MUTANTS_PROFILE:-dev} profile_args=() profile_dir
    case $profile in
        dev) profile_dir=debug ;;
        release) profile_args=(--release) profile_dir=release ;;
        *) echo "MUTANTS_PROFILE=$profile: use dev or release" >&2; exit 2 ;;
    esac
    if [ $no_run = 1 ]; then
        # The build phase: a mutant the compiler rejects is unviable.
        exec "$real" build --locked "${profile_args[@]}" -p twinloop-sim
    fi

    local seeds=${MUTANTS_DST_SEEDS:-200} threads=${MUTANTS_DST_THREADS:-2}
    local sim="${CARGO_TARGET_DIR:-$root/target}/$profile_dir/twinloop-sim"
    # One shape after another, the first that fails kills the mutant: the pair, then
    # the shapes that run code the pair's DST never reaches (event acknowledgements,
    # acked outputs, a group's votes).
    local shapes shape rc
    IFS=';' read -r -a shapes <<<"${MUTANTS_DST_SHAPES-;--acks;--acked;--nodes 3;--nodes 3 --witness}"
    for shape in "${shapes[@]}"; do
        # shellcheck disable=SC2086 # a shape is words, split on purpose
        echo "+ $sim dst --seeds $seeds --threads $threads --quiet --fail-fast $shape"
        # GNU timeout signals its whole process group: nothing the run started outlives it.
        # shellcheck disable=SC2086
        timeout -k 10 "${MUTANTS_DST_TIMEOUT_S:-120}" "$sim" dst --seeds "$seeds" --threads "$threads" --quiet --fail-fast $shape
        rc=$?
        case $rc in
            0) ;;
            124 | 137) echo "$marker dst-timeout${shape:+ ($shape)}"; exit 1 ;;
            # clap's usage error, or no binary: the harness is wrong, not the mutant.
            2 | 126 | 127) echo "$marker error (the DST exited $rc${shape:+ with $shape})"; exit 2 ;;
            # 10 safety, 11 liveness, 12 panic; anything else (an abort, a signal) too.
            *) echo "$marker dst-killed (exit $rc${shape:+, $shape})"; exit 1 ;;
        esac
    done

    echo "+ cargo test ${profile_args[*]} -p twinloop --lib"
    if ! "$real" test --locked "${profile_args[@]}" -p twinloop --lib --no-run; then
        # Compiles for the simulator but not under cfg(test): not the tests' doing.
        echo "$marker unviable (the unit tests do not build)"
        exit 1
    fi
    timeout -k 10 "${MUTANTS_UNIT_TIMEOUT_S:-300}" "$real" test --locked "${profile_args[@]}" -p twinloop --lib
    rc=$?
    case $rc in
        0) echo "$marker survived"; exit 0 ;;
        124 | 137) echo "$marker unit-timeout"; exit 1 ;;
        *) echo "$marker unit-killed (exit $rc)"; exit 1 ;;
    esac
}

# The figures and the lists of one run, from its outcomes.json and the verdict lines in
# its logs.
report() {
    local out=${1:-$root/mutants.out}
    [ -f "$out/outcomes.json" ] || die "no $out/outcomes.json: run tools/mutants.sh first, or name the run's directory"
    command -v jq >/dev/null || die "jq not found: install it (apt-get install jq)"
    local total=0 dst=0 unit=0 timeout=0 unviable=0 survived=0 error=0
    local l_unit="" l_timeout="" l_unviable="" l_survived="" l_error=""
    local name summary log verdict
    while IFS=$'\t' read -r name summary log; do
        total=$((total + 1))
        verdict=$(grep -a -m1 -o "$marker.*" "$out/$log" 2>/dev/null | sed "s/^$marker //")
        case "$summary:$verdict" in
            Unviable:* | *:unviable*) unviable=$((unviable + 1)); l_unviable+="  $name"$'\n' ;;
            Timeout:* | *:*timeout*) timeout=$((timeout + 1)); l_timeout+="  $name (${verdict:-the backstop timeout})"$'\n' ;;
            *:dst-killed*) dst=$((dst + 1)) ;;
            *:unit-killed*) unit=$((unit + 1)); l_unit+="  $name"$'\n' ;;
            MissedMutant:survived) survived=$((survived + 1)); l_survived+="  $name"$'\n' ;;
            *) error=$((error + 1)); l_error+="  $name ($summary, ${verdict:-no verdict})"$'\n' ;;
        esac
    done < <(jq -r '.outcomes[] | select(.scenario != "Baseline")
        | [.scenario.Mutant.name, .summary, .log_path] | @tsv' "$out/outcomes.json")
    printf 'mutants %d: killed by the DST %d, by the unit tests only %d, timeouts %d, unviable %d, survived %d' \
        $total $dst $unit $timeout $unviable $survived
    [ $error = 0 ] && echo || echo ", errors $error"
    [ -z "$l_survived" ] || printf 'survived:\n%s' "$l_survived"
    [ -z "$l_unit" ] || printf 'killed by the unit tests only:\n%s' "$l_unit"
    [ -z "$l_timeout" ] || printf 'timeouts:\n%s' "$l_timeout"
    [ -z "$l_unviable" ] || printf 'unviable:\n%s' "$l_unviable"
    [ -z "$l_error" ] || printf 'errors (the harness, not the mutant):\n%s' "$l_error"
}

# Every mutant in one build (tools/schemata): the same mutants, the same DST shapes and
# unit tests, a build for the lot instead of one per mutant.
schemata() {
    cd "$root" || return 2
    command -v cargo-mutants >/dev/null || die "cargo-mutants not found: cargo install cargo-mutants --locked --version 27.1.0"
    command -v timeout >/dev/null || die "timeout (GNU coreutils) not found"
    cargo build --release --locked --quiet --manifest-path tools/schemata/Cargo.toml || return 2
    local opts=(--seeds "${MUTANTS_DST_SEEDS:-200}" --threads "${MUTANTS_DST_THREADS:-2}")
    opts+=(--shapes "${MUTANTS_DST_SHAPES-;--acks;--acked;--nodes 3;--nodes 3 --witness}")
    nice -n 19 tools/schemata/target/release/twinloop-schemata "${opts[@]}" "$@"
}

# The mutants a schemata run left out (DIR/left-out.tsv: a constant context, a genre it
# does not rewrite, a mutant the compiler rejects), run one build each.
left_out() {
    local dir=${1:-mutants.schemata}
    [ -f "$dir/left-out.tsv" ] || die "no $dir/left-out.tsv: run tools/mutants.sh schemata first, or name its --out directory"
    shift || true
    local args=() name re
    while IFS=$'\t' read -r _ _ name; do
        re=$(printf '%s' "$name" | sed 's/[][(){}.*+?^$|\\]/\\&/g')
        args+=(--re "^$re\$")
    done < "$dir/left-out.tsv"
    [ ${#args[@]} -gt 0 ] || { echo "$dir/left-out.tsv is empty: nothing left out"; return 0; }
    main_run "${args[@]}" "$@"
}

main() {
    if [ "${TWINLOOP_MUTANTS_SHIM:-}" = 1 ]; then
        as_cargo "$@"
    fi
    case "${1:-}" in
        -h | --help) sed -n '2,/^set /p' "$self" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
        report) shift; report "$@"; return ;;
        schemata) shift; schemata "$@"; return ;;
        left-out) shift; left_out "$@"; return ;;
    esac
    main_run "$@"
}

# A cargo-mutants run, each mutant built on its own.
main_run() {
    cd "$root" || return 2
    command -v cargo-mutants >/dev/null || die "cargo-mutants not found: cargo install cargo-mutants --locked --version 27.1.0"
    command -v timeout >/dev/null || die "timeout (GNU coreutils) not found"
    local left
    left=$(grep -rl 'changed by cargo-mutants' runtime/src 2>/dev/null)
    [ -z "$left" ] || die "an interrupted run left a mutant in $left: restore it (git checkout -- $left) first"

    # cargo-mutants calls back a copy: this file may be edited while a run goes.
    local shim
    shim=$(mktemp "${TMPDIR:-/tmp}/twinloop-mutants.XXXXXX") || return 2
    cp "$self" "$shim" && chmod +x "$shim" || return 2
    export TWINLOOP_MUTANTS_ROOT=$root
    export TWINLOOP_MUTANTS_REAL_CARGO=${CARGO:-$(command -v cargo)}
    export TWINLOOP_MUTANTS_SHIM=1
    export CARGO=$shim
    nice -n 19 cargo-mutants mutants --in-place \
        --timeout "${MUTANTS_TIMEOUT_S:-900}" --build-timeout "${MUTANTS_TIMEOUT_S:-900}" "$@"
    local rc=$?
    rm -f "$shim"
    unset TWINLOOP_MUTANTS_SHIM
    export CARGO=$TWINLOOP_MUTANTS_REAL_CARGO
    # Where cargo-mutants wrote: --output DIR (or its environment variable) holds
    # DIR/mutants.out.
    local out=${CARGO_MUTANTS_OUTPUT:-.} list=0
    while [ $# -gt 0 ]; do
        case $1 in
            --list) list=1 ;;
            -o | --output) out=${2:-.}; shift ;;
            --output=*) out=${1#--output=} ;;
        esac
        shift
    done
    if [ $list = 0 ] && [ -f "$out/mutants.out/outcomes.json" ]; then
        echo
        report "$out/mutants.out"
    fi
    return $rc
}

# Whole functions are read before anything runs: editing this file mid-run is safe.
main "$@"; exit $?
