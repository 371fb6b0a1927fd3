"""The words of the files, diagnostics and runbook handlers, in English and Spanish.

Part of the agent's catalogue (``i18n.Texts.files``, ``.diagnostics``, ``.runbooks``), kept in a
module of its own so that neither grows past what one reads through. The same rules as there:
one field per text, every text in both languages with the same ``{placeholders}`` (a test
checks), and only the agent's own words: paths, zone names a policy invented, runbook names and
parameters, the technician's reason and error codes are shown as they came.

What the technician's client receives (``files.error``, ``diagnostics.error``, ``runbook.error``
messages, the report's own fields) stays English: it shows codes, and is not the person's screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FilesTexts:
    not_allowed: str
    zone_title: str  # {zone}
    zone_path: str  # {path}
    reason: str  # {reason}
    linked_file: str
    zone_to_read: str  # the question's line when the technician would read (list, download)
    zone_to_write: str  # ... and when they would write (upload, replace)
    zone_allowed: str  # {zone}: opened to read
    zone_allowed_write: str  # {zone}: opened to write
    zone_refused: str  # {zone}, {path}
    zone_denied: str  # {path}, {zone}
    listed: str  # {path}, {size}: the number of entries
    read: str  # {path}, {size}
    written: str  # {path}, {size}
    failed: str  # {code}, {path}
    internal: str
    platform_mismatch: str  # {platform}: this device's
    # The built-in zones (policy.zones.DEFAULT_ZONES) and the linked-file pseudo-zone; a zone a
    # policy defines itself is shown by its own name.
    zone_names: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DiagnosticsTexts:
    not_allowed: str
    internal: str
    collecting: str
    title: str  # {technician}
    reason: str  # {reason}
    send: str
    dont_send: str
    sent: str  # {size}
    withheld: str
    # One summary line per report section (diagnostics_sections' keys), shown before sending.
    section_names: Mapping[str, str]
    not_available: str  # {why}: the report's own reason, in English
    unknown: str
    included: str
    system: str  # {system}, {release}, {hostname}, {hours}, {minutes}
    cpu: str  # {cores}, {percent}, {load}
    memory: str  # {used}, {total}, {percent}, {swap_used}, {swap_total}
    disk: str  # {mountpoint}, {percent}
    none_readable: str
    network: str  # {count}, {names}
    interface_up: str  # {name}
    interface_down: str  # {name}
    connectivity: str  # {dns}, {name}, {gateway}, {server}
    dns_works: str
    dns_fails: str
    no_gateway: str
    server_unknown: str
    server_reachable: str
    server_unreachable: str
    processes: str  # {count}, {top}
    services_failed: str  # {count}, {units}
    services_none: str
    errors: str  # {count}


@dataclass(frozen=True, slots=True)
class RunbookTexts:
    not_allowed: str
    refused: str  # {reason}: the check's own words, in English (they go to the technician too)
    internal: str
    title: str  # {technician}
    reason: str  # {reason}
    no_reason: str
    time_limit: str  # {seconds}
    approved_by: str  # {approver}, {author}
    run_it: str
    dont_run: str
    running: str  # {run}: the runbook's name and parameters
    start_failed: str  # {name}, {error}
    not_run: str  # {name}
    stopped: str  # {name}
    timed_out: str  # {name}
    finished: str  # {name}, {exit_code}


FILES_EN = FilesTexts(
    not_allowed="Refused: the technician tried to use files; files are not allowed.",
    zone_title="The technician asks to open your {zone}",
    zone_path="Path: {path}",
    reason="Reason given: {reason}",
    linked_file="This file has more than one name on disk; another may be in a personal folder.",
    zone_to_read="Allowing lets the technician read files there (list, download), not change them.",
    zone_to_write="Allowing lets the technician write files there (upload, and replace a file).",
    zone_allowed="You allowed the technician to read your {zone} for this session.",
    zone_allowed_write="You allowed the technician to write in your {zone} for this session.",
    zone_refused="You kept your {zone} closed: the technician cannot open {path}.",
    zone_denied="Refused: {path} is in your {zone}, which this organisation keeps closed.",
    listed="The technician listed the folder {path}.",
    read="The technician downloaded {path} ({size} bytes).",
    written="The technician uploaded {path} ({size} bytes).",
    failed="A file transfer failed ({code}): {path}",
    internal="files: an internal error stopped a request of the technician.",
    platform_mismatch=(
        "Refused: the permission for files was made for another kind of device, not this "
        "{platform} one; its personal folders would not be protected, so files stay closed."
    ),
    zone_names={
        "documents": "documents",
        "desktop": "desktop",
        "pictures": "pictures",
        "downloads": "downloads",
        "media": "media",
        "mail": "mail",
        "browser_profiles": "browser profiles",
        "cloud_sync": "cloud folders",
        "credentials": "keys and passwords",
        "linked_file": "linked file",
    },
)

# Spanish names the zone as a folder ("la zona «Documentos»") rather than "sus documentos":
# the sentences then need no gender or number agreement with each zone's name.
FILES_ES = FilesTexts(
    not_allowed="Rechazado: el técnico intentó usar archivos; los archivos no están permitidos.",
    zone_title="El técnico pide abrir una zona personal: {zone}",
    zone_path="Ruta: {path}",
    reason="Motivo: {reason}",
    linked_file=(
        "Este archivo tiene más de un nombre en el disco; otro puede estar en una carpeta personal."
    ),
    zone_to_read=(
        "Si lo permite, el técnico puede leer los archivos (ver y descargar), no cambiarlos."
    ),
    zone_to_write="Si lo permite, el técnico puede escribir archivos (subir y reemplazar).",
    zone_allowed="Usted dejó al técnico leer la zona «{zone}» durante esta sesión.",
    zone_allowed_write="Usted dejó al técnico escribir en la zona «{zone}» durante esta sesión.",
    zone_refused="Usted mantuvo cerrada la zona «{zone}»: el técnico no puede abrir {path}.",
    zone_denied=(
        "Rechazado: {path} está en la zona «{zone}», que esta organización mantiene cerrada."
    ),
    listed="El técnico vio el contenido de la carpeta {path}.",
    read="El técnico descargó {path} ({size} bytes).",
    written="El técnico subió {path} ({size} bytes).",
    failed="Falló una transferencia de archivos ({code}): {path}",
    internal="archivos: un error interno detuvo una petición del técnico.",
    platform_mismatch=(
        "Rechazado: el permiso de archivos se hizo para otro tipo de equipo, no para este "
        "({platform}); sus carpetas personales no quedarían protegidas y los archivos siguen "
        "cerrados."
    ),
    zone_names={
        "documents": "Documentos",
        "desktop": "Escritorio",
        "pictures": "Imágenes",
        "downloads": "Descargas",
        "media": "Música y vídeos",
        "mail": "Correo",
        "browser_profiles": "Perfiles del navegador",
        "cloud_sync": "Carpetas en la nube",
        "credentials": "Claves y contraseñas",
        "linked_file": "Archivo con varios nombres",
    },
)

DIAGNOSTICS_EN = DiagnosticsTexts(
    not_allowed=(
        "Refused: the technician asked for a diagnostics report; diagnostics is not allowed."
    ),
    internal="diagnostics: an internal error stopped the report.",
    collecting="The technician asked for a diagnostics report; collecting it.",
    title="{technician} asks for this system report",
    reason="Reason given: {reason}",
    send="Send",
    dont_send="Don't send",
    sent="Diagnostics report sent to the technician ({size} bytes).",
    withheld="The diagnostics report was not sent.",
    section_names={
        "os": "System",
        "cpu": "CPU",
        "memory": "Memory",
        "disks": "Disks",
        "network": "Network",
        "connectivity": "Connectivity",
        "processes": "Processes",
        "services": "Services",
        "recent_errors": "Recent errors",
    },
    not_available="not available ({why})",
    unknown="unknown",
    included="included",
    system="{system} {release} on {hostname}, up {hours} h {minutes} min",
    cpu="{cores} cores, {percent}% busy, load {load}",
    memory="{used} of {total} used ({percent}%); swap {swap_used} of {swap_total}",
    disk="{mountpoint} {percent}% full",
    none_readable="none readable",
    network="{count} interfaces ({names})",
    interface_up="{name} up",
    interface_down="{name} down",
    connectivity="DNS {dns} ({name}), gateway {gateway}, {server}",
    dns_works="works",
    dns_fails="FAILS",
    no_gateway="none found",
    server_unknown="server unknown",
    server_reachable="server reachable",
    server_unreachable="server NOT reachable",
    processes="{count} running; busiest: {top} (names only, no command lines)",
    services_failed="{count} failed ({units})",
    services_none="none failed",
    errors="{count} recent error lines from the system journal",
)

DIAGNOSTICS_ES = DiagnosticsTexts(
    not_allowed=(
        "Rechazado: el técnico pidió un informe de diagnóstico; el diagnóstico no está permitido."
    ),
    internal="diagnóstico: un error interno detuvo el informe.",
    collecting="El técnico pidió un informe de diagnóstico; se está recopilando.",
    title="{technician} pide este informe del sistema",
    reason="Motivo: {reason}",
    send="Enviar",
    dont_send="No enviar",
    sent="Informe de diagnóstico enviado al técnico ({size} bytes).",
    withheld="El informe de diagnóstico no se envió.",
    section_names={
        "os": "Sistema",
        "cpu": "CPU",
        "memory": "Memoria",
        "disks": "Discos",
        "network": "Red",
        "connectivity": "Conectividad",
        "processes": "Procesos",
        "services": "Servicios",
        "recent_errors": "Errores recientes",
    },
    not_available="no disponible ({why})",
    unknown="sin datos",
    included="incluido",
    system="{system} {release} en {hostname}, encendido desde hace {hours} h {minutes} min",
    cpu="{cores} núcleos, {percent}% ocupado, carga {load}",
    memory="{used} de {total} en uso ({percent}%); intercambio {swap_used} de {swap_total}",
    disk="{mountpoint} lleno al {percent}%",
    none_readable="ninguno legible",
    network="{count} interfaces ({names})",
    interface_up="{name} activa",
    interface_down="{name} inactiva",
    connectivity="DNS {dns} ({name}), puerta de enlace {gateway}, {server}",
    dns_works="funciona",
    dns_fails="FALLA",
    no_gateway="no encontrada",
    server_unknown="servidor desconocido",
    server_reachable="servidor accesible",
    server_unreachable="servidor NO accesible",
    processes="{count} en marcha; los más activos: {top} (solo nombres, sin líneas de órdenes)",
    services_failed="{count} con fallos ({units})",
    services_none="ninguno con fallos",
    errors="{count} líneas de error recientes del registro del sistema",
)

RUNBOOKS_EN = RunbookTexts(
    not_allowed="Refused: the technician tried to run a runbook; runbooks are not allowed.",
    refused="Refused a runbook from the technician: {reason}",
    internal="runbooks: an internal error stopped the run.",
    title="{technician} wants to run an approved script",
    reason="Reason given: {reason}",
    no_reason="(none)",
    time_limit="Time limit: {seconds} s",
    approved_by="Approved by {approver}, written by {author}",
    run_it="Run it",
    dont_run="Don't run",
    running="Running the approved runbook {run}.",
    start_failed="The runbook {name} could not start: {error}",
    not_run="The runbook {name} was not run.",
    stopped="The runbook {name} was stopped: runbooks ended.",
    timed_out="The runbook {name} was stopped at the time limit.",
    finished="The runbook {name} finished (exit code {exit_code}).",
)

RUNBOOKS_ES = RunbookTexts(
    not_allowed=(
        "Rechazado: el técnico intentó ejecutar un script de reparación; los scripts de "
        "reparación no están permitidos."
    ),
    refused="Se rechazó un script del técnico: {reason}",
    internal="scripts de reparación: un error interno detuvo la ejecución.",
    title="{technician} quiere ejecutar un script aprobado",
    reason="Motivo: {reason}",
    no_reason="(ninguno)",
    time_limit="Tiempo máximo: {seconds} s",
    approved_by="Aprobado por {approver}, escrito por {author}",
    run_it="Ejecutarlo",
    dont_run="No ejecutar",
    running="Ejecutando el script aprobado {run}.",
    start_failed="El script {name} no pudo arrancar: {error}",
    not_run="El script {name} no se ejecutó.",
    stopped="El script {name} se detuvo: se retiraron los scripts de reparación.",
    timed_out="El script {name} se detuvo al llegar a su tiempo máximo.",
    finished="El script {name} terminó (código de salida {exit_code}).",
)


def zone_name(texts: FilesTexts, zone: str) -> str:
    """A zone as the person reads it: a built-in one in their language, a zone the policy
    defined by its own name (the organisation chose it, in its own language)."""
    return texts.zone_names.get(zone, zone.replace("_", " "))


@dataclass(frozen=True, slots=True)
class ScreenTexts:
    """The screen view's words for the person (agent/capabilities/screen.py)."""

    sharing: str  # {technician}: the view started
    how_to_pause: str  # the typed commands
    pause_button: str  # the session window's button next to the screen's Revoke
    paused: str
    resumed: str
    stopped: str
    failed: str  # {code}, {message}


SCREEN_EN = ScreenTexts(
    sharing="Your screen is being shared: {technician} sees everything on it.",
    how_to_pause=(
        "Type 'p' (or use 'Pause or resume' in the session window) to pause the screen view, 'p'"
        " again to resume it, 'r screen' to stop it for this session."
    ),
    pause_button="Pause or resume",
    paused="Screen view paused: the technician sees nothing until you resume it.",
    resumed="Screen view resumed: your screen is being shared again.",
    stopped="Your screen is no longer shared.",
    failed="Screen view stopped ({code}): {message}",
)
SCREEN_ES = ScreenTexts(
    sharing="Su pantalla se está compartiendo: {technician} ve todo lo que hay en ella.",
    how_to_pause=(
        "Escriba 'p' (o use 'Pausar o reanudar' en la ventana de la sesión) para pausar la vista"
        " de su pantalla, 'p' otra vez para reanudarla, 'r screen' para detenerla en esta sesión."
    ),
    pause_button="Pausar o reanudar",
    paused="Vista de la pantalla en pausa: el técnico no ve nada hasta que la reanude.",
    resumed="Vista de la pantalla reanudada: su pantalla se comparte de nuevo.",
    stopped="Su pantalla ya no se comparte.",
    failed="La vista de la pantalla se detuvo ({code}): {message}",
)
