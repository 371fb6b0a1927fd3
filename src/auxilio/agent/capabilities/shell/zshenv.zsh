# Auxilio shell integration for zsh, first part. The agent starts zsh with ZDOTDIR pointing to a
# private directory it made for one terminal, only so that zsh reads the .zshrc next to this file
# (which reports command lines). Here the person's own .zshenv runs as it would without Auxilio.
__auxilio_dir=$ZDOTDIR
if [[ -n @USER_ZDOTDIR@ ]]; then
    ZDOTDIR=@USER_ZDOTDIR@
else
    unset ZDOTDIR
fi
if [[ -r ${ZDOTDIR:-$HOME}/.zshenv ]]; then
    source ${ZDOTDIR:-$HOME}/.zshenv
fi
# The person's .zshenv may move ZDOTDIR (an XDG layout); their .zshrc is looked for there.
__auxilio_user_zdotdir_set=${+ZDOTDIR}
__auxilio_user_zdotdir=${ZDOTDIR-}
ZDOTDIR=$__auxilio_dir
