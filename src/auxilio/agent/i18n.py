"""The agent's own words in English and Spanish: a small typed catalogue, not gettext.

Why a dataclass rather than .po files: the agent has a few dozen strings, two languages, and
every string must exist in both. ``Texts`` has one field per string, so mypy refuses a language
that lacks one, and a test needs no catalogue tooling. Everything else the person reads (names,
purposes, legal text, privacy notice, the technician's reason) comes from the signed grant as the
server sent it and is never translated here. The files, diagnostics and runbook handlers' words
are fields of their own (``Texts.files`` ...), written in ``i18n_capabilities``.

The language: ``--lang``, else the first of LC_ALL, LC_MESSAGES, LANG that names one we have
(``es_MX.UTF-8`` -> Spanish), else English.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from auxilio.agent.i18n_capabilities import (
    DIAGNOSTICS_EN,
    DIAGNOSTICS_ES,
    FILES_EN,
    FILES_ES,
    RUNBOOKS_EN,
    RUNBOOKS_ES,
    SCREEN_EN,
    SCREEN_ES,
    DiagnosticsTexts,
    FilesTexts,
    RunbookTexts,
    ScreenTexts,
)
from auxilio.protocol.types import Capability

Lang = Literal["en", "es"]
LANGUAGES: tuple[Lang, ...] = ("en", "es")


@dataclass(frozen=True, slots=True)
class Texts:
    lang: Lang
    # -- the consent prompt (hashed into the receipt: change a word and the hash changes) --------
    request_title: str
    label_technician: str
    label_ticket: str
    label_longest: str
    label_recorded: str
    label_answer_by: str
    label_silence: str
    label_key: str
    no_ticket: str
    yes: str
    no: str
    longest_value: str  # {duration}, {end}
    answer_by_value: str  # {end}
    silence_value: str  # {duration}
    asks_to: str
    purpose: str  # {purpose}
    own_limit: str  # {duration} {end}: a capability that ends before the session
    separately: str
    details: str
    details_key: str
    details_policy: str
    details_limits: str  # {capability}
    limit_none: str
    limit_shell: str  # {shell}
    limit_paths: str  # {paths}
    limit_download: str
    limit_upload: str
    limit_both: str
    limit_bytes: str  # {size}
    minute: str
    minutes: str
    second: str
    seconds: str
    capability_names: Mapping[Capability, str]
    capability_plain: Mapping[Capability, str]
    # -- the terminal prompt's questions (stable lines in English, see consent.py) --------------
    ask: str  # {capability}
    please_answer: str
    # -- the consent window ---------------------------------------------------------------------
    consent_window_title: str
    allow: str
    refuse: str
    confirm: str
    refuse_all: str
    countdown: str  # {seconds}
    window_asks: str
    # -- the session window ---------------------------------------------------------------------
    session_window_title: str
    connected: str  # {technician}, {organisation}
    unattended_connected: str  # {technician}, {organisation}
    revoke_access: str
    may_do: str
    may_do_nothing: str
    time_left: str  # {left}, {end}
    revoke: str  # {capability}
    revoked: str  # {capability}
    end_session: str
    activity: str
    close_title: str
    close_question: str
    extension_question: str  # {technician}, {end}, {current}
    extension_reason: str  # {reason}
    extension_accept: str
    extension_refuse: str
    # -- questions during the session (agent.questions), terminal and window ------------------
    question_how: str  # {allow}, {refuse}, {seconds}
    question_answered: str  # {answer}
    question_silence: str  # {refuse}
    question_withdrawn: str  # {title}
    question_too_many: str  # {title}
    question_too_soon: str
    # -- the feed -------------------------------------------------------------------------------
    help: str
    status: str  # {technician}, {left}, {allowed}
    nothing: str
    feed_active: str  # {allowed}
    feed_channel_open: str  # {technician}, {key}
    feed_revoked: str  # {capability}, {by}
    feed_ended: str  # {reason}, {by}
    feed_ended_emergency: str  # the organisation declared an emergency (R18)
    feed_ends_in: str  # {minutes}, {seconds}, {end}
    feed_extension_how: str  # {seconds}
    feed_extended: str  # {end}
    feed_extension_kept: str  # {decision}, {end}
    feed_time_over: str
    feed_technician_lost: str  # {wait}
    feed_wait_seconds: str  # {seconds}
    feed_wait_unknown: str
    feed_technician_back: str  # {technician}
    # -- the capability handlers' own words (i18n_capabilities) ------------------------------
    files: FilesTexts
    diagnostics: DiagnosticsTexts
    runbooks: RunbookTexts
    screen: ScreenTexts


_CAPABILITIES_EN = {
    Capability.CHAT: "Chat",
    Capability.TERMINAL: "Terminal",
    Capability.FILES: "Files",
    Capability.DIAGNOSTICS: "Diagnostics",
    Capability.RUNBOOKS: "Repair scripts",
    Capability.SCREEN: "Screen",
    Capability.INPUT: "Mouse and keyboard",
    Capability.CLIPBOARD: "Clipboard",
}
_CAPABILITIES_ES = {
    Capability.CHAT: "Chat",
    Capability.TERMINAL: "Terminal",
    Capability.FILES: "Archivos",
    Capability.DIAGNOSTICS: "Diagnóstico",
    Capability.RUNBOOKS: "Scripts de reparación",
    Capability.SCREEN: "Pantalla",
    Capability.INPUT: "Ratón y teclado",
    Capability.CLIPBOARD: "Portapapeles",
}

EN = Texts(
    lang="en",
    request_title="Remote support request",
    label_technician="Technician",
    label_ticket="Ticket",
    label_longest="Longest",
    label_recorded="Recorded",
    label_answer_by="Answer by",
    label_silence="No answer",
    label_key="Their key",
    no_ticket="(none)",
    yes="yes: what the technician sees and does is kept for the auditors",
    no="no",
    longest_value="{duration}, ending at the latest at {end}",
    answer_by_value="{end}",
    silence_value="within {duration} means refused",
    asks_to="The technician asks to:",
    purpose="why: {purpose}",
    own_limit="only for {duration}, until {end} at the latest",
    separately=(
        "You are asked about each one separately. You can stop each one, or end the whole "
        "session, at any time."
    ),
    details="Details (for your IT department)",
    details_key="Technician key",
    details_policy="Policy version",
    details_limits="Limits of {capability}",
    limit_none="none beyond the session's time limit",
    limit_shell="shell {shell}",
    limit_paths="only under {paths}",
    limit_download="from this device to the technician",
    limit_upload="to this device",
    limit_both="both ways",
    limit_bytes="at most {size} bytes",
    minute="minute",
    minutes="minutes",
    second="second",
    seconds="seconds",
    capability_names=_CAPABILITIES_EN,
    capability_plain={
        Capability.CHAT: "write messages with you; they see only what you type to them",
        Capability.TERMINAL: (
            "run commands as you: they can read every file your account can read, and change "
            "or delete what your account can change"
        ),
        Capability.FILES: "see, copy or change files on this device, within the limits below",
        Capability.DIAGNOSTICS: (
            "read how this device is doing: hardware, programs running, network; not your files"
        ),
        Capability.RUNBOOKS: "run repair scripts approved by their organisation on this device",
        Capability.SCREEN: "see everything on your screen while it is allowed",
        Capability.INPUT: "move your mouse and type on your keyboard, as if they sat here",
        Capability.CLIPBOARD: (
            "put text on your clipboard and read the text you copied; each time is shown here"
        ),
    },
    ask="Allow {capability}? [y/n]",
    please_answer="Please answer y (yes) or n (no).",
    consent_window_title="Auxilio: remote support request",
    allow="Allow",
    refuse="Refuse",
    confirm="Confirm",
    refuse_all="Refuse all",
    countdown="{seconds} s left to answer; no answer means refused.",
    window_asks="A window asks for your consent.",
    session_window_title="Auxilio: support session",
    connected="Connected: {technician} ({organisation})",
    unattended_connected="Unattended session: {technician} ({organisation})",
    revoke_access="Revoke access",
    may_do="They may:",
    may_do_nothing="Nothing is allowed now.",
    time_left="Time left: {left} (ends at {end})",
    revoke="Stop {capability}",
    revoked="{capability}: stopped",
    end_session="End session",
    activity="What is happening:",
    close_title="End the session?",
    close_question="Closing this window ends the support session. End it now?",
    extension_question="{technician} asks for more time: until {end} (now it ends at {current}).",
    extension_reason="Reason given: {reason}",
    extension_accept="Accept",
    extension_refuse="Refuse",
    question_how=(
        "Type y ({allow}) or n ({refuse}) within {seconds} s; no answer counts as {refuse}."
    ),
    question_answered="Your answer: {answer}.",
    question_silence="no answer in time ({refuse})",
    question_withdrawn="The question is withdrawn (no longer needed): {title}",
    question_too_many="Too many questions at once; refused without asking you: {title}",
    question_too_soon=(
        "That answer came just as this question appeared, so it is not taken: read the "
        "question, then answer again."
    ),
    help=(
        "Type a message to chat, 'r <capability>' to revoke one, 'q' or Ctrl-C to end the session."
    ),
    status="Session active | technician {technician} | {left} left | allowed: {allowed}",
    nothing="nothing",
    feed_active="Session active. You allowed: {allowed}.",
    feed_channel_open="End-to-end encrypted channel open with {technician} (technician key {key}).",
    feed_revoked="{capability} revoked ({by}); it is stopped.",
    feed_ended="Session ended ({reason}, by {by}).",
    feed_ended_emergency="Session ended: emergency declared by the organisation.",
    feed_ends_in="The session ends in {minutes} min {seconds} s (at {end}).",
    feed_extension_how=(
        "Allow the extension? Type y (yes) or n (no) within {seconds} s; no answer means no."
    ),
    feed_extended="Session extended until {end}.",
    feed_extension_kept="Extension {decision}: the session still ends at {end}.",
    feed_time_over="The time allowed for this session is over.",
    feed_technician_lost=(
        "The technician's connection dropped; waiting {wait} for them to come back. Messages you"
        " write meanwhile do not reach them. You can end the session at any time."
    ),
    feed_wait_seconds="up to {seconds} s",
    feed_wait_unknown="a little while",
    feed_technician_back="{technician} is connected again.",
    files=FILES_EN,
    diagnostics=DIAGNOSTICS_EN,
    runbooks=RUNBOOKS_EN,
    screen=SCREEN_EN,
)

ES = Texts(
    lang="es",
    request_title="Solicitud de asistencia remota",
    label_technician="Técnico",
    label_ticket="Ticket",
    label_longest="Duración máxima",
    label_recorded="Se graba",
    label_answer_by="Responda antes de",
    label_silence="Si no responde",
    label_key="Su clave",
    no_ticket="(ninguno)",
    yes="sí: lo que el técnico ve y hace se guarda para los auditores",
    no="no",
    longest_value="{duration}, termina como muy tarde a las {end}",
    answer_by_value="{end}",
    silence_value="en {duration} significa rechazado",
    asks_to="El técnico pide:",
    purpose="para qué: {purpose}",
    own_limit="solo durante {duration}, hasta las {end} como máximo",
    separately=(
        "Se le pregunta por cada uno por separado. Puede detener cada uno, o terminar toda la "
        "sesión, en cualquier momento."
    ),
    details="Detalles (para su departamento de informática)",
    details_key="Clave del técnico",
    details_policy="Versión de la política",
    details_limits="Límites de {capability}",
    limit_none="ninguno aparte del tiempo máximo de la sesión",
    limit_shell="intérprete {shell}",
    limit_paths="solo dentro de {paths}",
    limit_download="de este equipo al técnico",
    limit_upload="hacia este equipo",
    limit_both="en ambos sentidos",
    limit_bytes="como máximo {size} bytes",
    minute="minuto",
    minutes="minutos",
    second="segundo",
    seconds="segundos",
    capability_names=_CAPABILITIES_ES,
    capability_plain={
        Capability.CHAT: "escribirse mensajes con usted; solo ve lo que usted le escribe",
        Capability.TERMINAL: (
            "ejecutar órdenes como usted: puede leer todos los archivos que su cuenta puede "
            "leer, y cambiar o borrar lo que su cuenta puede cambiar"
        ),
        Capability.FILES: (
            "ver, copiar o cambiar archivos de este equipo, dentro de los límites indicados"
        ),
        Capability.DIAGNOSTICS: (
            "ver el estado de este equipo: hardware, programas en marcha, red; no sus archivos"
        ),
        Capability.RUNBOOKS: (
            "ejecutar en este equipo scripts de reparación aprobados por su organización"
        ),
        Capability.SCREEN: "ver todo lo que hay en su pantalla mientras esté permitido",
        Capability.INPUT: "mover su ratón y escribir con su teclado, como si estuviera aquí",
        Capability.CLIPBOARD: (
            "poner texto en su portapapeles y leer el texto que usted copió; cada vez se "
            "muestra aquí"
        ),
    },
    ask="¿Permitir {capability}? [s/n]",
    please_answer="Responda s (sí) o n (no).",
    consent_window_title="Auxilio: solicitud de asistencia remota",
    allow="Permitir",
    refuse="Rechazar",
    confirm="Confirmar",
    refuse_all="Rechazar todo",
    countdown="Quedan {seconds} s para responder; sin respuesta: rechazado.",
    window_asks="Una ventana le pide su consentimiento.",
    session_window_title="Auxilio: sesión de asistencia",
    connected="Conectado: {technician} ({organisation})",
    unattended_connected="Sesión desatendida: {technician} ({organisation})",
    revoke_access="Revocar el acceso",
    may_do="Puede:",
    may_do_nothing="Ahora no hay nada permitido.",
    time_left="Tiempo restante: {left} (termina a las {end})",
    revoke="Detener {capability}",
    revoked="{capability}: detenido",
    end_session="Terminar la sesión",
    activity="Lo que está pasando:",
    close_title="¿Terminar la sesión?",
    close_question="Cerrar esta ventana termina la sesión de asistencia. ¿Terminarla ahora?",
    extension_question=(
        "{technician} pide más tiempo: hasta las {end} (ahora termina a las {current})."
    ),
    extension_reason="Motivo: {reason}",
    extension_accept="Aceptar",
    extension_refuse="Rechazar",
    question_how=(
        "Escriba s ({allow}) o n ({refuse}) en {seconds} s; sin respuesta cuenta como {refuse}."
    ),
    question_answered="Su respuesta: {answer}.",
    question_silence="sin respuesta a tiempo ({refuse})",
    question_withdrawn="Se retira la pregunta (ya no hace falta): {title}",
    question_too_many="Demasiadas preguntas a la vez; rechazada sin preguntarle: {title}",
    question_too_soon=(
        "Esa respuesta llegó justo cuando apareció esta pregunta, así que no cuenta: lea la "
        "pregunta y responda de nuevo."
    ),
    help=(
        "Escriba un mensaje para chatear, 'r <capacidad>' para retirar una, 'q' o Ctrl-C para "
        "terminar la sesión."
    ),
    status="Sesión activa | técnico {technician} | quedan {left} | permitido: {allowed}",
    nothing="nada",
    feed_active="Sesión activa. Usted permitió: {allowed}.",
    feed_channel_open=(
        "Canal cifrado de extremo a extremo abierto con {technician} (clave del técnico {key})."
    ),
    feed_revoked="{capability} retirado ({by}); está detenido.",
    feed_ended="Sesión terminada ({reason}, por {by}).",
    feed_ended_emergency="Sesión terminada: emergencia declarada por la organización.",
    feed_ends_in="La sesión termina en {minutes} min {seconds} s (a las {end}).",
    feed_extension_how=(
        "¿Permitir la ampliación? Escriba s (sí) o n (no) en {seconds} s; sin respuesta: no."
    ),
    feed_extended="Sesión ampliada hasta las {end}.",
    feed_extension_kept="Ampliación {decision}: la sesión sigue terminando a las {end}.",
    feed_time_over="Se acabó el tiempo permitido para esta sesión.",
    feed_technician_lost=(
        "Se cortó la conexión del técnico; se le espera {wait} para que vuelva. Lo que escriba"
        " mientras tanto no le llega. Puede terminar la sesión en cualquier momento."
    ),
    feed_wait_seconds="hasta {seconds} s",
    feed_wait_unknown="un momento",
    feed_technician_back="{technician} está conectado de nuevo.",
    files=FILES_ES,
    diagnostics=DIAGNOSTICS_ES,
    runbooks=RUNBOOKS_ES,
    screen=SCREEN_ES,
)

CATALOGUE: dict[Lang, Texts] = {"en": EN, "es": ES}


def language_from_environment(environ: Mapping[str, str] | None = None) -> Lang:
    """The first locale variable that is set decides, as in POSIX (LC_ALL over LC_MESSAGES over
    LANG); a language we do not have falls back to English."""
    env = os.environ if environ is None else environ
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(variable, "")
        if value:
            code = value.split(".")[0].split("_")[0].split("@")[0].lower()
            return "es" if code == "es" else "en"
    return "en"


def texts_for(lang: str | None = None) -> Texts:
    """The catalogue for ``lang`` (``en`` or ``es``), or the device's language when None."""
    if lang is None:
        return CATALOGUE[language_from_environment()]
    if lang not in CATALOGUE:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    return CATALOGUE[lang]
