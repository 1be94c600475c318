// German and English strings; language from localStorage, else navigator.language.
import USERS from './i18n-users.js';
import STORY from './i18n-story.js';
const STRINGS = {
  en: {
    'csv.download': 'Download CSV',
    'bk.title': 'Backups', 'bk.text': 'Verified copies of the database in the data directory (backups/). To restore one, stop the server and run:', 'bk.cmd': 'rzmon restore FILE',
    'bk.time': 'Taken', 'bk.size': 'Size', 'bk.verified': 'Check', 'bk.ok': 'verified', 'bk.failed': 'failed',
    'bk.download': 'Download', 'bk.now': 'Back up now', 'bk.running': 'Backing up…', 'bk.done': 'Backup {name} written and verified.',
    'bk.none': 'No backups yet.', 'bk.fetching': 'Downloading {name}…',
    'app.title': 'rzmon', 'nav.overview': 'Overview', 'nav.history': 'History', 'nav.incidents': 'Incidents',
    'nav.access': 'Access', 'nav.devices': 'Devices', 'nav.account': 'Account', 'nav.menu': 'Menu',
    'conn.connecting': 'Connecting…', 'conn.live': 'Live', 'conn.offline': 'Disconnected – retrying', 'conn.in': 'in {s} s',
    'conn.off': 'Not connected',
    'login.title': 'Sign in', 'login.user': 'Username', 'login.password': 'Password', 'login.submit': 'Sign in',
    'login.wrong': 'Wrong username or password.',
    'login.locked': 'Too many failed attempts. Try again in {time}.',
    'login.busy': 'Signing in…',
    'err.network': 'The server cannot be reached. Check the network connection.',
    'err.status': 'The server answered with status {status}.',
    'err.session': 'Your session has ended. Please sign in again.',
    'err.demoted': 'Your role is now viewer: you may only read, so the controls that change something are hidden.',
    'ov.title': 'Server room', 'ov.history': 'History', 'ov.empty': 'No devices registered yet. See Devices to add one.',
    'ov.tmp': 'Temperature', 'ov.lf': 'Humidity', 'ov.door': 'Door', 'ov.locked': 'locked', 'ov.unlocked': 'unlocked',
    'ov.online': 'online', 'ov.offline': 'offline', 'ov.lastseen': 'last seen {when}', 'ov.never': 'never seen',
    'ov.sync': 'access list in sync', 'ov.nosync': 'access list not in sync', 'ov.incident': 'Incident: {type}',
    'ov.accessev': 'Card {who}: {result}', 'ov.granted': 'granted', 'ov.denied': 'denied',
    'hist.title': 'History', 'hist.device': 'Device', 'hist.range': 'Range', 'hist.1h': '1 h', 'hist.24h': '24 h',
    'hist.7d': '7 d', 'hist.30d': '30 d', 'hist.custom': 'Custom', 'hist.from': 'From', 'hist.to': 'To',
    'hist.show': 'Show', 'hist.points': '{n} readings', 'hist.nodata': 'No readings in this range.',
    'hist.tmp': 'Temperature (°C)', 'hist.lf': 'Humidity (%)', 'hist.truncated': 'Only the newest {n} readings are shown.',
    'hist.markers': 'Red lines mark incidents; shaded spans show the door unlocked.',
    'inc.title': 'Incidents', 'inc.type': 'Type', 'inc.device': 'Device', 'inc.from': 'From', 'inc.to': 'To',
    'inc.limit': 'Per page', 'inc.apply': 'Filter', 'inc.time': 'Time', 'inc.details': 'Details',
    'inc.none': 'No incidents.', 'inc.older': 'Older', 'inc.newer': 'Newer', 'inc.all': 'All devices',
    'acc.title': 'Access', 'acc.ids': 'Access IDs', 'acc.id': 'Access ID', 'acc.name': 'Name', 'acc.addedby': 'Added by',
    'acc.when': 'Added', 'acc.add': 'Add by ID', 'acc.addbtn': 'Add', 'acc.enrol': 'Enrol by swipe',
    'acc.enrolbtn': 'Start enrolment', 'acc.device': 'Device', 'acc.present': 'Present the card at {device} within {s} s…',
    'acc.added': 'Access ID {id} added.', 'acc.revoke': 'Revoke', 'acc.confirm': 'Revoke access ID {id} ({name})?',
    'acc.revoked': 'Access ID {id} revoked.', 'acc.log': 'Access log', 'acc.who': 'Who', 'acc.result': 'Result',
    'acc.door': 'Door', 'acc.none': 'No access IDs yet.', 'acc.nolog': 'No access events.', 'acc.unknown': 'unknown card',
    'dev.title': 'Devices', 'dev.id': 'Device', 'dev.status': 'Status', 'dev.created': 'Registered',
    'dev.sync': 'Access list', 'dev.none': 'No devices registered yet.', 'dev.add': 'Add a device',
    'dev.addtext': 'Register a device here, or on the server with the command line. The password is shown once:',
    'dev.esp': 'Settings for the ESP32', 'dev.host': 'Host', 'dev.port': 'Port', 'dev.clientid': 'Client id and username',
    'dev.lwt': 'Last will (retained, QoS 1)', 'dev.pub': 'Publishes', 'dev.sub': 'Subscribes (QoS 1)',
    'dev.config': 'Configuration', 'dev.load': 'Load config', 'dev.loading': 'Asking {device} for its config…',
    'dev.save': 'Save changes', 'dev.saving': 'Sending the changes to {device}…', 'dev.nochange': 'Nothing changed.',
    'dev.confirmed': '{device} confirmed the new configuration.', 'dev.history': 'Config history',
    'dev.user': 'User', 'dev.change': 'Change', 'dev.outcome': 'Outcome', 'dev.nohist': 'No config changes yet.',
    'dev.badnum': '{key} must be a number.', 'dev.badjson': '{key} must be valid JSON.', 'dev.copy': 'Copy',
    'dev.copied': 'Copied', 'dev.select': 'Choose a device',
    'err.offline': '{device} is offline; try again when it is back online.', 'err.timeout': '{device} did not answer in time. Check that it is running and connected.',
    'acct.title': 'Account', 'acct.user': 'Signed in as', 'acct.created': 'Account created',
    'acct.logout': 'Sign out', 'acct.logoutAll': 'Sign out everywhere', 'acct.lang': 'Language',
    'acct.passwd': 'The password is changed on the server: rzmon user passwd <name>.',
    'pw.title': 'Change password', 'pw.current': 'Current password', 'pw.new': 'New password',
    'pw.repeat': 'Repeat the new password', 'pw.submit': 'Change password', 'pw.done': 'Your password was changed.',
    'pw.short': 'The new password needs at least {n} characters.', 'pw.mismatch': 'The two new passwords differ.',
    'dev.newid': 'Device id', 'dev.addbtn': 'Register', 'dev.added': '{device} is registered. Copy its password now:',
    'dev.password': 'Password', 'dev.once': 'The password is shown only this once; rzmon keeps only a hash of it.',
    'nav.alerts': "Alerts", 'al.title': "Alerts", 'al.active': "Active alerts", 'al.history': "History",
    'al.rules': "Rules", 'al.none': "No active alerts. All is well.",
    'al.nohistory': "No alerts in this range.", 'al.ack': "Acknowledge",
    'al.acked': "acknowledged by {who}, {when}", 'al.state': "State", 'al.state.firing': "firing",
    'al.state.acknowledged': "acknowledged", 'al.state.resolved': "resolved", 'al.state.active': "active",
    'al.allstates': "All states", 'al.allrules': "All rules", 'al.rule': "Rule", 'al.summary': "What",
    'al.notices': "Notifications", 'al.nonotice': "no notification sent", 'al.notice.firing': "sent",
    'al.notice.reminder': "reminder", 'al.notice.resolved': "resolved sent", 'al.sev.warning': "warning",
    'al.sev.critical': "critical", 'al.system': "rzmon", 'al.since': "since",
    'al.resolvedat': "resolved {when}", 'al.rname': "Name", 'al.rwhat': "Fires when",
    'al.dn.firing': "alert", 'al.dn.reminder': "reminder", 'al.dn.resolved': "resolved",
    'al.dst.sent': "sent {when}", 'al.dst.failed': "failed: {reason}", 'al.dst.queued': "queued",
    'al.dst.retrying': "retrying (attempt {n} failed: {reason})", 'al.dst.held': "held by quiet hours until {until}",
    'al.dst.suppressed': "storm cap reached: goes out in one summary", 'al.dst.muted': "not sent: the channel was muted",
    'al.dst.skipped': "not sent: {reason}",
    'al.severity': "Severity", 'al.enabled': "Enabled", 'al.snooze': "Snooze",
    'al.snoozed': "snoozed until {until}", 'al.notsnoozed': "not snoozed", 'al.snooze.1h': "snooze 1 h",
    'al.snooze.8h': "snooze 8 h", 'al.snooze.24h': "snooze 24 h", 'al.unsnooze': "end snooze",
    'al.edit': "Edit", 'al.newrule': "New rule", 'al.editrule': "Edit rule: {name}", 'al.save': "Save",
    'al.cancel': "Cancel", 'al.delete': "Delete",
    'al.confirmdelete': "Delete the rule {name}? Its alerts stay in the history.",
    'al.badge': "{n} active alerts", 'al.secs': "{n} s", 'al.mins': "{n} min", 'al.hours': "{n} h",
    'al.d.for': "for {d}", 'al.d.atonce': "at once",
    'al.d.threshold': "{metric} {op} {value} {lasting}; resolves at {back}.",
    'al.d.door': "Door unlocked for {d}.", 'al.d.silence': "No message from a device for {d}.",
    'al.d.incident': "Incident of type {types}, at once; resolves {d} after the last.",
    'al.d.denied': "{n} denied card swipes within {d} at one reader; resolves {r} after the last.",
    'al.d.health': "One of rzmon’s own checks (database, broker, …) fails; resolves when it recovers.",
    'al.k.threshold': "threshold", 'al.k.door_open_for': "door open too long", 'al.k.silence': "device silent",
    'al.k.incident': "device incident", 'al.k.access_denied': "denied card swipes",
    'al.k.health': "rzmon health", 'al.f.name': "Name", 'al.f.kind': "Kind", 'al.f.severity': "Severity",
    'al.f.enabled': "Enabled", 'al.f.devices': "Devices", 'al.f.metric': "Metric",
    'al.f.op': "Fires when the value is", 'al.f.value': "Threshold", 'al.f.hysteresis': "Hysteresis",
    'al.f.for_secs': "For", 'al.f.keep_firing_for_secs': "Keep firing for", 'al.f.after_secs': "Silent for",
    'al.f.types': "Incident types", 'al.f.count': "Denied swipes", 'al.f.window_secs': "Within",
    'al.f.resolve_after_secs': "Resolve after", 'al.f.reminder_first_secs': "First reminder after",
    'al.f.reminder_every_secs': "Then remind every", 'al.f.devices.hint': "none selected = every device",
    'al.f.secs': "seconds", 'al.f.types.hint': "comma-separated, e.g. unauthorized_access, door_forced",
    'al.f.remind.hint': "seconds; 0 = no reminders", 'al.op.above': "at or above",
    'al.op.below': "at or below",
    'yes': 'yes', 'no': 'no', 'loading': 'Loading…',
    'ch.title': 'Notification channels', 'ch.intro': 'Where alerts are sent. Secrets are write-only: leave a secret field empty to keep it.',
    'ch.none': 'No channels yet. Add one and press Send test.', 'ch.add': 'Add channel', 'ch.new': 'New channel',
    'ch.editing': 'Edit {name}', 'ch.name': 'Name', 'ch.kind': 'Kind', 'ch.status': 'Status', 'ch.last': 'Last delivery',
    'ch.on': 'enabled', 'ch.off': 'disabled', 'ch.readonly': 'from RZMON_NOTIFY_URLS (read-only)',
    'ch.muteduntil': 'muted until {when}', 'ch.quietshort': 'quiet {start}–{end}',
    'ch.test': 'Send test', 'ch.testing': 'Sending a test to {name}…', 'ch.mute1h': 'Mute 1 h', 'ch.unmute': 'Unmute',
    'ch.edit': 'Edit', 'ch.delete': 'Delete', 'ch.confirm': 'Delete the channel {name}?', 'ch.save': 'Save', 'ch.cancel': 'Cancel',
    'ch.keep': '*** (unchanged)', 'ch.minsev': 'Send alerts from', 'ch.sev.warning': 'warning', 'ch.sev.critical': 'critical only',
    'ch.groupwait': 'Group wait (s)', 'ch.groupwait.hint': 'The first alert waits this long; alerts firing meanwhile come in the same message.',
    'ch.stormcap': 'Messages per hour at most', 'ch.stormcap.hint': 'Beyond this, one summary follows.',
    'ch.quiet': 'Quiet hours (hold non-critical messages)', 'ch.quietfrom': 'From', 'ch.quietto': 'To',
    'ch.holdcrit': 'Hold critical alerts too', 'ch.enabled': 'Enabled',
    'ch.st.sent': 'sent', 'ch.st.failed': 'failed', 'ch.st.retrying': 'retrying',
    'ch.sec.starttls': 'STARTTLS (587)', 'ch.sec.tls': 'TLS (465)', 'ch.sec.none': 'none (local relay only)',
    'ch.k.ntfy': 'ntfy', 'ch.k.gotify': 'Gotify', 'ch.k.webhook': 'Webhook (JSON)', 'ch.k.email': 'E-mail (SMTP)',
    'ch.k.telegram': 'Telegram', 'ch.k.discord': 'Discord', 'ch.k.slack': 'Slack',
    'ch.f.server': 'Server URL', 'ch.f.topic': 'Topic', 'ch.f.token': 'Token', 'ch.f.username': 'Username',
    'ch.f.password': 'Password', 'ch.f.tags': 'Tags (comma-separated)', 'ch.f.click': 'Click URL', 'ch.f.url': 'URL',
    'ch.f.hmac_key': 'HMAC key (signs the body)', 'ch.f.headers': 'Extra headers (Name: value, one per line)',
    'ch.f.ca': 'Own CA certificate (PEM, optional)',
    'ch.f.host': 'SMTP server', 'ch.f.port': 'Port', 'ch.f.security': 'Encryption', 'ch.f.from': 'From',
    'ch.f.to': 'To (comma-separated)', 'ch.f.chat_id': 'Chat id', 'ch.f.api_url': 'Bot API URL',
  },
  de: {
    'csv.download': 'CSV herunterladen',
    'bk.title': 'Sicherungen', 'bk.text': 'Geprüfte Kopien der Datenbank im Datenverzeichnis (backups/). Zum Zurückspielen den Server stoppen und ausführen:', 'bk.cmd': 'rzmon restore DATEI',
    'bk.time': 'Erstellt', 'bk.size': 'Größe', 'bk.verified': 'Prüfung', 'bk.ok': 'geprüft', 'bk.failed': 'fehlgeschlagen',
    'bk.download': 'Herunterladen', 'bk.now': 'Jetzt sichern', 'bk.running': 'Sichere…', 'bk.done': 'Sicherung {name} geschrieben und geprüft.',
    'bk.none': 'Noch keine Sicherungen.', 'bk.fetching': 'Lade {name} herunter…',
    'app.title': 'rzmon', 'nav.overview': 'Übersicht', 'nav.history': 'Verlauf', 'nav.incidents': 'Vorfälle',
    'nav.access': 'Zutritt', 'nav.devices': 'Geräte', 'nav.account': 'Konto', 'nav.menu': 'Menü',
    'conn.connecting': 'Verbinde…', 'conn.live': 'Live', 'conn.offline': 'Getrennt – neuer Versuch', 'conn.in': 'in {s} s',
    'conn.off': 'Nicht verbunden',
    'login.title': 'Anmelden', 'login.user': 'Benutzername', 'login.password': 'Passwort', 'login.submit': 'Anmelden',
    'login.wrong': 'Benutzername oder Passwort ist falsch.',
    'login.locked': 'Zu viele Fehlversuche. Bitte in {time} erneut versuchen.',
    'login.busy': 'Anmeldung läuft…',
    'err.network': 'Der Server ist nicht erreichbar. Bitte die Netzwerkverbindung prüfen.',
    'err.status': 'Der Server antwortete mit Status {status}.',
    'err.session': 'Die Sitzung ist abgelaufen. Bitte erneut anmelden.',
    'err.demoted': 'Ihre Rolle ist jetzt „Betrachter“: nur Lesen, daher sind die Bedienelemente für Änderungen ausgeblendet.',
    'ov.title': 'Serverraum', 'ov.history': 'Verlauf', 'ov.empty': 'Noch keine Geräte registriert. Unter „Geräte“ steht, wie es geht.',
    'ov.tmp': 'Temperatur', 'ov.lf': 'Luftfeuchte', 'ov.door': 'Tür', 'ov.locked': 'verriegelt', 'ov.unlocked': 'entriegelt',
    'ov.online': 'online', 'ov.offline': 'offline', 'ov.lastseen': 'zuletzt gesehen {when}', 'ov.never': 'nie gesehen',
    'ov.sync': 'Zutrittsliste aktuell', 'ov.nosync': 'Zutrittsliste nicht aktuell', 'ov.incident': 'Vorfall: {type}',
    'ov.accessev': 'Karte {who}: {result}', 'ov.granted': 'Zutritt gewährt', 'ov.denied': 'abgewiesen',
    'hist.title': 'Verlauf', 'hist.device': 'Gerät', 'hist.range': 'Zeitraum', 'hist.1h': '1 Std', 'hist.24h': '24 Std',
    'hist.7d': '7 Tage', 'hist.30d': '30 Tage', 'hist.custom': 'Eigener', 'hist.from': 'Von', 'hist.to': 'Bis',
    'hist.show': 'Anzeigen', 'hist.points': '{n} Messwerte', 'hist.nodata': 'Keine Messwerte in diesem Zeitraum.',
    'hist.tmp': 'Temperatur (°C)', 'hist.lf': 'Luftfeuchte (%)', 'hist.truncated': 'Nur die neuesten {n} Messwerte werden gezeigt.',
    'hist.markers': 'Rote Linien markieren Vorfälle, schattierte Bereiche die offene Tür.',
    'inc.title': 'Vorfälle', 'inc.type': 'Art', 'inc.device': 'Gerät', 'inc.from': 'Von', 'inc.to': 'Bis',
    'inc.limit': 'Pro Seite', 'inc.apply': 'Filtern', 'inc.time': 'Zeit', 'inc.details': 'Details',
    'inc.none': 'Keine Vorfälle.', 'inc.older': 'Ältere', 'inc.newer': 'Neuere', 'inc.all': 'Alle Geräte',
    'acc.title': 'Zutritt', 'acc.ids': 'Zutritts-IDs', 'acc.id': 'Zutritts-ID', 'acc.name': 'Name', 'acc.addedby': 'Angelegt von',
    'acc.when': 'Angelegt', 'acc.add': 'Per ID hinzufügen', 'acc.addbtn': 'Hinzufügen', 'acc.enrol': 'Per Karte anlernen',
    'acc.enrolbtn': 'Anlernen starten', 'acc.device': 'Gerät', 'acc.present': 'Karte innerhalb von {s} s an {device} vorhalten…',
    'acc.added': 'Zutritts-ID {id} hinzugefügt.', 'acc.revoke': 'Entziehen', 'acc.confirm': 'Zutritts-ID {id} ({name}) entziehen?',
    'acc.revoked': 'Zutritts-ID {id} entzogen.', 'acc.log': 'Zutrittsprotokoll', 'acc.who': 'Wer', 'acc.result': 'Ergebnis',
    'acc.door': 'Tür', 'acc.none': 'Noch keine Zutritts-IDs.', 'acc.nolog': 'Keine Zutrittsereignisse.', 'acc.unknown': 'unbekannte Karte',
    'dev.title': 'Geräte', 'dev.id': 'Gerät', 'dev.status': 'Status', 'dev.created': 'Registriert',
    'dev.sync': 'Zutrittsliste', 'dev.none': 'Noch keine Geräte registriert.', 'dev.add': 'Gerät hinzufügen',
    'dev.addtext': 'Registrieren Sie ein Gerät hier oder auf dem Server per Kommandozeile. Das Passwort wird nur einmal angezeigt:',
    'dev.esp': 'Einstellungen für den ESP32', 'dev.host': 'Host', 'dev.port': 'Port', 'dev.clientid': 'Client-ID und Benutzername',
    'dev.lwt': 'Last Will (retained, QoS 1)', 'dev.pub': 'Sendet an', 'dev.sub': 'Abonniert (QoS 1)',
    'dev.config': 'Konfiguration', 'dev.load': 'Konfiguration laden', 'dev.loading': 'Frage {device} nach der Konfiguration…',
    'dev.save': 'Änderungen speichern', 'dev.saving': 'Sende die Änderungen an {device}…', 'dev.nochange': 'Nichts geändert.',
    'dev.confirmed': '{device} hat die neue Konfiguration bestätigt.', 'dev.history': 'Konfigurationsverlauf',
    'dev.user': 'Benutzer', 'dev.change': 'Änderung', 'dev.outcome': 'Ergebnis', 'dev.nohist': 'Noch keine Änderungen.',
    'dev.badnum': '{key} muss eine Zahl sein.', 'dev.badjson': '{key} muss gültiges JSON sein.', 'dev.copy': 'Kopieren',
    'dev.copied': 'Kopiert', 'dev.select': 'Gerät wählen',
    'err.offline': '{device} ist offline; bitte erneut versuchen, sobald es wieder online ist.', 'err.timeout': '{device} hat nicht rechtzeitig geantwortet. Läuft es und ist es verbunden?',
    'acct.title': 'Konto', 'acct.user': 'Angemeldet als', 'acct.created': 'Konto angelegt',
    'acct.logout': 'Abmelden', 'acct.logoutAll': 'Überall abmelden', 'acct.lang': 'Sprache',
    'acct.passwd': 'Das Passwort wird auf dem Server geändert: rzmon user passwd <name>.',
    'pw.title': 'Passwort ändern', 'pw.current': 'Aktuelles Passwort', 'pw.new': 'Neues Passwort',
    'pw.repeat': 'Neues Passwort wiederholen', 'pw.submit': 'Passwort ändern', 'pw.done': 'Ihr Passwort wurde geändert.',
    'pw.short': 'Das neue Passwort braucht mindestens {n} Zeichen.', 'pw.mismatch': 'Die beiden neuen Passwörter unterscheiden sich.',
    'dev.newid': 'Geräte-ID', 'dev.addbtn': 'Registrieren', 'dev.added': '{device} ist registriert. Kopieren Sie jetzt das Passwort:',
    'dev.password': 'Passwort', 'dev.once': 'Das Passwort wird nur dieses eine Mal angezeigt; rzmon speichert nur einen Hash.',
    'nav.alerts': "Alarme", 'al.title': "Alarme", 'al.active': "Aktive Alarme", 'al.history': "Verlauf",
    'al.rules': "Regeln", 'al.none': "Keine aktiven Alarme. Alles in Ordnung.",
    'al.nohistory': "Keine Alarme in diesem Zeitraum.", 'al.ack': "Bestätigen",
    'al.acked': "bestätigt von {who}, {when}", 'al.state': "Zustand", 'al.state.firing': "ausgelöst",
    'al.state.acknowledged': "bestätigt", 'al.state.resolved': "behoben", 'al.state.active': "aktiv",
    'al.allstates': "Alle Zustände", 'al.allrules': "Alle Regeln", 'al.rule': "Regel", 'al.summary': "Was",
    'al.notices': "Zustellung", 'al.nonotice': "keine Benachrichtigung gesendet",
    'al.notice.firing': "gesendet", 'al.notice.reminder': "Erinnerung",
    'al.notice.resolved': "Entwarnung gesendet", 'al.sev.warning': "Warnung", 'al.sev.critical': "kritisch",
    'al.system': "rzmon", 'al.since': "seit", 'al.resolvedat': "behoben {when}", 'al.rname': "Name",
    'al.dn.firing': "Alarm", 'al.dn.reminder': "Erinnerung", 'al.dn.resolved': "Entwarnung",
    'al.dst.sent': "gesendet {when}", 'al.dst.failed': "fehlgeschlagen: {reason}", 'al.dst.queued': "in der Warteschlange",
    'al.dst.retrying': "wird wiederholt (Versuch {n} fehlgeschlagen: {reason})", 'al.dst.held': "wegen Ruhezeit zurückgehalten bis {until}",
    'al.dst.suppressed': "Sturmgrenze erreicht: kommt in einer Zusammenfassung", 'al.dst.muted': "nicht gesendet: der Kanal war stummgeschaltet",
    'al.dst.skipped': "nicht gesendet: {reason}",
    'al.rwhat': "Löst aus, wenn", 'al.severity': "Schwere", 'al.enabled': "Aktiv",
    'al.snooze': "Stummschalten", 'al.snoozed': "stumm bis {until}", 'al.notsnoozed': "nicht stumm",
    'al.snooze.1h': "1 Std stumm", 'al.snooze.8h': "8 Std stumm", 'al.snooze.24h': "24 Std stumm",
    'al.unsnooze': "Stummschaltung beenden", 'al.edit': "Bearbeiten", 'al.newrule': "Neue Regel",
    'al.editrule': "Regel bearbeiten: {name}", 'al.save': "Speichern", 'al.cancel': "Abbrechen",
    'al.delete': "Löschen", 'al.confirmdelete': "Regel {name} löschen? Ihre Alarme bleiben im Verlauf.",
    'al.badge': "{n} aktive Alarme", 'al.secs': "{n} s", 'al.mins': "{n} Min.", 'al.hours': "{n} Std",
    'al.d.for': "für {d}", 'al.d.atonce': "sofort",
    'al.d.threshold': "{metric} {op} {value} {lasting}; behoben bei {back}.",
    'al.d.door': "Tür {d} lang entriegelt.", 'al.d.silence': "Ein Gerät sendet {d} lang nichts.",
    'al.d.incident': "Vorfall vom Typ {types}, sofort; behoben {d} nach dem letzten.",
    'al.d.denied': "{n} abgewiesene Karten innerhalb von {d} an einem Leser; behoben {r} nach der letzten.",
    'al.d.health': "Eine Selbstprüfung von rzmon (Datenbank, Broker, …) schlägt fehl; behoben, sobald sie wieder klappt.",
    'al.k.threshold': "Schwellwert", 'al.k.door_open_for': "Tür zu lange offen", 'al.k.silence': "Gerät stumm",
    'al.k.incident': "Vorfall am Gerät", 'al.k.access_denied': "abgewiesene Karten",
    'al.k.health': "rzmon-Zustand", 'al.f.name': "Name", 'al.f.kind': "Art", 'al.f.severity': "Schwere",
    'al.f.enabled': "Aktiv", 'al.f.devices': "Geräte", 'al.f.metric': "Messwert",
    'al.f.op': "Löst aus, wenn der Wert", 'al.f.value': "Schwellwert", 'al.f.hysteresis': "Hysterese",
    'al.f.for_secs': "Dauer", 'al.f.keep_firing_for_secs': "Nachlaufzeit", 'al.f.after_secs': "Stumm seit",
    'al.f.types': "Vorfallstypen", 'al.f.count': "Abgewiesene Karten", 'al.f.window_secs': "Innerhalb von",
    'al.f.resolve_after_secs': "Behoben nach", 'al.f.reminder_first_secs': "Erste Erinnerung nach",
    'al.f.reminder_every_secs': "Dann erinnern alle", 'al.f.devices.hint': "keine Auswahl = alle Geräte",
    'al.f.secs': "Sekunden", 'al.f.types.hint': "durch Komma getrennt, z. B. unauthorized_access, door_forced",
    'al.f.remind.hint': "Sekunden; 0 = keine Erinnerung", 'al.op.above': "erreicht oder übersteigt",
    'al.op.below': "erreicht oder unterschreitet",
    'yes': 'ja', 'no': 'nein', 'loading': 'Lädt…',
    'ch.title': 'Benachrichtigungskanäle', 'ch.intro': 'Wohin Alarme gehen. Geheimnisse sind nur schreibbar: ein leeres Geheimnis-Feld behält den gespeicherten Wert.',
    'ch.none': 'Noch keine Kanäle. Legen Sie einen an und drücken Sie „Test senden“.', 'ch.add': 'Kanal hinzufügen', 'ch.new': 'Neuer Kanal',
    'ch.editing': '{name} bearbeiten', 'ch.name': 'Name', 'ch.kind': 'Art', 'ch.status': 'Status', 'ch.last': 'Letzte Zustellung',
    'ch.on': 'aktiv', 'ch.off': 'deaktiviert', 'ch.readonly': 'aus RZMON_NOTIFY_URLS (nur lesbar)',
    'ch.muteduntil': 'stumm bis {when}', 'ch.quietshort': 'Ruhezeit {start}–{end}',
    'ch.test': 'Test senden', 'ch.testing': 'Sende einen Test an {name}…', 'ch.mute1h': '1 h stumm', 'ch.unmute': 'Stumm aufheben',
    'ch.edit': 'Bearbeiten', 'ch.delete': 'Löschen', 'ch.confirm': 'Kanal {name} löschen?', 'ch.save': 'Speichern', 'ch.cancel': 'Abbrechen',
    'ch.keep': '*** (unverändert)', 'ch.minsev': 'Alarme senden ab', 'ch.sev.warning': 'Warnung', 'ch.sev.critical': 'nur kritisch',
    'ch.groupwait': 'Sammelzeit (s)', 'ch.groupwait.hint': 'Der erste Alarm wartet so lange; weitere Alarme kommen in dieselbe Nachricht.',
    'ch.stormcap': 'Höchstens Nachrichten pro Stunde', 'ch.stormcap.hint': 'Darüber hinaus folgt eine Zusammenfassung.',
    'ch.quiet': 'Ruhezeiten (nicht kritische Nachrichten zurückhalten)', 'ch.quietfrom': 'Von', 'ch.quietto': 'Bis',
    'ch.holdcrit': 'Auch kritische Alarme zurückhalten', 'ch.enabled': 'Aktiv',
    'ch.st.sent': 'gesendet', 'ch.st.failed': 'fehlgeschlagen', 'ch.st.retrying': 'wird wiederholt',
    'ch.sec.starttls': 'STARTTLS (587)', 'ch.sec.tls': 'TLS (465)', 'ch.sec.none': 'keine (nur lokales Relay)',
    'ch.k.ntfy': 'ntfy', 'ch.k.gotify': 'Gotify', 'ch.k.webhook': 'Webhook (JSON)', 'ch.k.email': 'E-Mail (SMTP)',
    'ch.k.telegram': 'Telegram', 'ch.k.discord': 'Discord', 'ch.k.slack': 'Slack',
    'ch.f.server': 'Server-URL', 'ch.f.topic': 'Topic', 'ch.f.token': 'Token', 'ch.f.username': 'Benutzername',
    'ch.f.password': 'Passwort', 'ch.f.tags': 'Tags (durch Komma getrennt)', 'ch.f.click': 'Klick-URL', 'ch.f.url': 'URL',
    'ch.f.hmac_key': 'HMAC-Schlüssel (signiert den Inhalt)', 'ch.f.headers': 'Zusätzliche Header (Name: Wert, je Zeile)',
    'ch.f.ca': 'Eigenes CA-Zertifikat (PEM, optional)',
    'ch.f.host': 'SMTP-Server', 'ch.f.port': 'Port', 'ch.f.security': 'Verschlüsselung', 'ch.f.from': 'Absender',
    'ch.f.to': 'Empfänger (durch Komma getrennt)', 'ch.f.chat_id': 'Chat-ID', 'ch.f.api_url': 'Bot-API-URL',
  },
};

for (const l of Object.keys(USERS)) Object.assign(STRINGS[l], USERS[l]);
for (const l of Object.keys(STORY)) Object.assign(STRINGS[l], STORY[l]);

const KEY = 'rzmon.lang';
const listeners = new Set();

function initial() {
  const stored = localStorage.getItem(KEY);
  if (stored && STRINGS[stored]) return stored;
  const nav = (navigator.language || 'en').toLowerCase();
  return nav.startsWith('de') ? 'de' : 'en';
}

let lang = initial();

export const languages = () => Object.keys(STRINGS);
export const getLang = () => lang;

export function setLang(l) {
  if (!STRINGS[l] || l === lang) return;
  lang = l;
  localStorage.setItem(KEY, l);
  document.documentElement.lang = l;
  translateDom();
  listeners.forEach((fn) => fn(l));
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function t(key, params = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in params ? String(params[k]) : `{${k}}`));
}

/** Fills every element with data-i18n (text) or data-i18n-label (aria-label). */
export function translateDom(root = document) {
  document.documentElement.lang = lang;
  root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll('[data-i18n-label]').forEach((el) => { el.setAttribute('aria-label', t(el.dataset.i18nLabel)); });
}

export const locale = () => (lang === 'de' ? 'de-DE' : 'en-GB');

export function fmtDate(iso) {
  if (!iso) return '–';
  const d = iso instanceof Date ? iso : new Date(iso);
  // One format per language everywhere (rows, filters, charts): 1.12.2026, 21:20:05 / 01/12/2026, 21:20:05.
  return new Intl.DateTimeFormat(locale(), {
    day: 'numeric', month: 'numeric', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).format(d);
}

export function fmtNumber(n, digits = 1) {
  return new Intl.NumberFormat(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

export function fmtRelative(iso) {
  if (!iso) return '';
  const secs = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' });
  const a = Math.abs(secs);
  if (a < 60) return rtf.format(secs, 'second');
  if (a < 3600) return rtf.format(Math.round(secs / 60), 'minute');
  if (a < 86400) return rtf.format(Math.round(secs / 3600), 'hour');
  return rtf.format(Math.round(secs / 86400), 'day');
}

export function fmtDuration(secs) {
  secs = Math.max(0, Math.ceil(secs));
  const m = Math.floor(secs / 60), s = secs % 60;
  if (lang === 'de') return m ? `${m} Min. ${s} s` : `${s} s`;
  return m ? `${m} min ${s} s` : `${s} s`;
}
