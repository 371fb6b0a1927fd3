# Auxilio shell integration for zsh, second part (see zshenv.zsh). The person's .zshrc runs first,
# then a preexec hook reports every command line to the agent just before zsh runs it, as a
# private escape sequence
#   ESC ] 7701 ; <nonce> ; C ; <command line, escaped> BEL
# which the agent removes from the output. The nonce is known only to this shell (not exported),
# so a program that prints a marker, or a file shown with cat, cannot report a command.
if (( __auxilio_user_zdotdir_set )); then
    ZDOTDIR=$__auxilio_user_zdotdir
else
    unset ZDOTDIR
fi
unset __auxilio_dir __auxilio_user_zdotdir __auxilio_user_zdotdir_set
if [[ -r ${ZDOTDIR:-$HOME}/.zshrc ]]; then
    source ${ZDOTDIR:-$HOME}/.zshrc
fi

typeset -g __auxilio_nonce=@NONCE@

__auxilio_emit() {
    builtin printf '\e]7701;%s;%s\a' $__auxilio_nonce $1
}

# Control characters become \xNN and a backslash \\, so the marker never holds ESC or BEL.
__auxilio_report() {
    emulate -L zsh
    local s=${1[1,4096]} code c
    s=${s//\\/\\\\}
    for code in {1..31} 127; do
        c=${(#)code}
        [[ $s == *$c* ]] && s=${s//$c/\\x${(L)${(l:2::0:)$(( [##16] code ))}}}
    done
    __auxilio_emit "C;$s"
}

# zsh passes the line as read (after history expansion) as $1 while history is on, whether or not
# the line is kept in it, and the full text it will run as $3.
__auxilio_preexec() {
    emulate -L zsh
    __auxilio_report "${1:-$3}"
}

__auxilio_precmd() {
    local s=$?
    __auxilio_emit P
    return $s
}

autoload -Uz add-zsh-hook
add-zsh-hook preexec __auxilio_preexec
add-zsh-hook precmd __auxilio_precmd
