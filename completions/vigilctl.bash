# bash completion for vigilctl(1). The candidates come from vigilctl itself
# (`vigilctl __complete`): commands and options from its own registry, task ids and host names
# from the running daemon (a short timeout, never starting it, nothing when it is absent).
# Installed as share/bash-completion/completions/vigilctl, which bash-completion loads on demand.

_vigilctl() {
    local IFS=$'\n'
    # The line up to the cursor, split by vigilctl: bash's own words break at ':' and '=',
    # which would cut a --bus address apart.
    COMPREPLY=($("${COMP_WORDS[0]}" __complete --line "${COMP_LINE:0:COMP_POINT}" 2>/dev/null))
}

complete -F _vigilctl vigilctl
