# Auxilio shell integration for fish. The agent starts fish with --init-command sourcing this file
# (mode 0600, in a private directory it removes once the first prompt shows): the person's own
# configuration has run by then. It reports every command line to the agent just before fish runs
# it, as a private escape sequence
#   ESC ] 7701 ; <nonce> ; C ; <command line, escaped> BEL
# which the agent removes from the output. The nonce is known only to this shell (not exported),
# so a program that prints a marker, or a file shown with cat, cannot report a command.
set -g __auxilio_nonce @NONCE@

function __auxilio_emit
    builtin printf '\e]7701;%s;%s\a' $__auxilio_nonce $argv[1]
end

# Control characters become \xNN and a backslash \\, so the marker never holds ESC or BEL.
set -g __auxilio_ctl
set -g __auxilio_ctl_code
for __auxilio_code in (seq 1 31) 127
    set -l hex (builtin printf %02x $__auxilio_code)
    set -a __auxilio_ctl (builtin printf "\\x$hex" | string collect --no-trim-newlines)
    set -a __auxilio_ctl_code "\\x$hex"
end
set -e __auxilio_code

function __auxilio_report
    set -l s (string sub --length 4096 -- $argv[1] | string collect)
    set s (string replace --all -- '\\' '\\\\' $s | string collect)
    set -l i 1
    for c in $__auxilio_ctl
        set s (string replace --all -- $c $__auxilio_ctl_code[$i] $s | string collect)
        set i (math $i + 1)
    end
    __auxilio_emit "C;$s"
end

function __auxilio_preexec --on-event fish_preexec
    __auxilio_report $argv[1]
end

function __auxilio_prompt --on-event fish_prompt
    __auxilio_emit P
end
