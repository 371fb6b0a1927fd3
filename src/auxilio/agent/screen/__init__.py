"""The person's screen, seen and (with its own consent) controlled from the technician's console.

X11 only for now: capture and change detection (``capture``, ``changes``), the real-time encoder
and its JPEG-rectangles fallback (``encoder``), input injection through XTest with the person's own
input always winning (``input``, ``keymap``, ``local_input``), and the clipboard (``clipboard``).
On Wayland the agent offers none of it (``display``).
"""
