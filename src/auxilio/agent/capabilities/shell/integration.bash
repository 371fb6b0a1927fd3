# Auxilio shell integration for bash. The agent writes this file for one terminal (mode 0600, in a
# private directory it removes once the first prompt shows) and starts `bash --rcfile <it> -i`.
# It reads the person's usual start-up file first, as an interactive bash would, then reports
# every command line to the agent just before bash runs it, as a private escape sequence
#   ESC ] 7701 ; <nonce> ; C ; <command line, escaped> BEL
# which the agent removes from the output. The nonce is known only to this shell (not exported),
# so a program that prints a marker, or a file shown with cat, cannot report a command.

if [ -r "$HOME/.bashrc" ]; then
    . "$HOME/.bashrc"
fi

__auxilio_nonce=@NONCE@

# `history 1` must hold every line bash reads: a leading space, a duplicate or a HISTIGNORE pattern
# would otherwise keep a command out of it.
HISTCONTROL=
unset HISTIGNORE

__auxilio_in_prompt=1     # while PROMPT_COMMAND runs (and before the first prompt)
__auxilio_fresh=0         # a prompt was shown since the last command line started
__auxilio_histcmd=        # HISTCMD of the command line being run
__auxilio_reported=       # history number of the last line reported whole
__auxilio_whole=0         # the current line was reported whole (from history)
__auxilio_seen=()         # simple commands reported for a line not in history
__auxilio_status=0
__auxilio_bs='\'
__auxilio_ctl=()
__auxilio_ctl_code=()
for __auxilio_i in {1..31} 127; do
    printf -v __auxilio_hex '%02x' "$__auxilio_i"
    printf -v __auxilio_c "\\x$__auxilio_hex"
    __auxilio_ctl+=("$__auxilio_c")
    __auxilio_ctl_code+=("${__auxilio_bs}x$__auxilio_hex")
done
unset __auxilio_i __auxilio_hex __auxilio_c

__auxilio_emit() {
    builtin printf '\e]7701;%s;%s\a' "$__auxilio_nonce" "$1"
}

# Control characters become \xNN and a backslash \\, so the marker never holds ESC or BEL.
__auxilio_report() {
    local s=${1:0:4096} i
    s=${s//"$__auxilio_bs"/"$__auxilio_bs$__auxilio_bs"}
    for i in "${!__auxilio_ctl[@]}"; do
        [[ $s == *"${__auxilio_ctl[i]}"* ]] && s=${s//"${__auxilio_ctl[i]}"/"${__auxilio_ctl_code[i]}"}
    done
    __auxilio_emit "C;$s"
}

# The DEBUG trap runs before every simple command. A new command line (a prompt was shown, or
# HISTCMD moved on: several lines pasted at once) is reported whole from history, after history
# expansion, as bash saved it. A line that is not in history (history turned off, or the
# technician set HISTCONTROL again) is reported one distinct simple command at a time, as bash
# runs them.
__auxilio_preexec() {
    [[ $__auxilio_in_prompt == 1 || -n ${COMP_LINE-} ]] && return 0
    case $BASH_COMMAND in
        __auxilio_prompt_start | __auxilio_prompt_end) return 0 ;;
    esac
    if [[ $__auxilio_fresh == 1 || $HISTCMD != "$__auxilio_histcmd" ]]; then
        __auxilio_fresh=0
        __auxilio_histcmd=$HISTCMD
        __auxilio_seen=()
        local entry
        entry=$(HISTTIMEFORMAT= builtin history 1)
        if [[ $entry =~ ^\ *([0-9]+)[*\ ]\ (.*)$ && ${BASH_REMATCH[1]} == "$HISTCMD" &&
            ${BASH_REMATCH[1]} != "$__auxilio_reported" ]]; then
            __auxilio_reported=${BASH_REMATCH[1]}
            __auxilio_whole=1
            __auxilio_report "${BASH_REMATCH[2]}"
            return 0
        fi
        __auxilio_whole=0
    fi
    [[ $__auxilio_whole == 1 ]] && return 0
    local seen
    for seen in "${__auxilio_seen[@]}"; do
        [[ $seen == "$BASH_COMMAND" ]] && return 0
    done
    (( ${#__auxilio_seen[@]} >= 100 )) && return 0
    __auxilio_seen+=("$BASH_COMMAND")
    __auxilio_report "$BASH_COMMAND"
}

# First and last of PROMPT_COMMAND: the person's prompt commands are not reported, and see the status
# of the command line, and so does PS1.
__auxilio_prompt_start() {
    __auxilio_status=$?
    __auxilio_in_prompt=1
    return $__auxilio_status
}

__auxilio_prompt_end() {
    __auxilio_emit P
    __auxilio_in_prompt=0
    __auxilio_fresh=1
    return $__auxilio_status
}

if [[ ${PROMPT_COMMAND+${PROMPT_COMMAND@a}} == *a* ]]; then
    PROMPT_COMMAND=(__auxilio_prompt_start "${PROMPT_COMMAND[@]}" __auxilio_prompt_end)
else
    PROMPT_COMMAND=__auxilio_prompt_start$'\n'${PROMPT_COMMAND:+$PROMPT_COMMAND$'\n'}__auxilio_prompt_end
fi

# A DEBUG trap of the person's own (bash-preexec, for one) keeps running after ours.
__auxilio_user_debug=$(trap -p DEBUG)
__auxilio_user_debug=${__auxilio_user_debug#trap -- }
__auxilio_user_debug=${__auxilio_user_debug% DEBUG}
eval "__auxilio_user_debug=${__auxilio_user_debug:-''}"
if [[ -n $__auxilio_user_debug ]]; then
    trap '__auxilio_preexec; eval "$__auxilio_user_debug"' DEBUG
else
    trap __auxilio_preexec DEBUG
fi
