#!/usr/bin/python3
"""The WebKitGTK browser the WebKit tests drive: WebKitWebDriver starts it with the capability's
args (test/helpers/engines/webkit.ts).

It runs the engine Debian's MiniBrowser runs (libwebkit2gtk-4.1, through gir1.2-webkit2-4.1) and
sets itself up for automation as MiniBrowser does, with two things MiniBrowser cannot do under
WebDriver: keep website data on disk (MiniBrowser's automation sessions are always ephemeral), and
report the page's uncaught errors. WebDriver classic has no log to read them from, and WebKit
writes no console output for an ephemeral session, so a user script in every frame posts each
uncaught error and unhandled rejection to this process, which writes it to stderr as one line:
"DEWGRID PAGE ERROR <JSON string>".

Arguments: --automation, then --ephemeral (website data in memory only, as in Safari's Private
Browsing) or --profile=DIR (kept in DIR), then WebKitSettings as --name=value.
"""
import json
import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import Gtk, WebKit2  # noqa: E402


def setting_value(text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


ephemeral = False
profile = None
settings = WebKit2.Settings()
for arg in sys.argv[1:]:
    if arg == "--automation":
        continue
    if arg == "--ephemeral":
        ephemeral = True
    elif arg.startswith("--profile="):
        profile = arg.split("=", 1)[1]
    elif arg.startswith("--") and "=" in arg:
        name, value = arg[2:].split("=", 1)
        settings.set_property(name, setting_value(value))
    else:
        sys.exit(f"webkit-browser: unknown argument {arg}")
if ephemeral == (profile is not None):
    sys.exit("webkit-browser: give exactly one of --ephemeral and --profile=DIR")

if ephemeral:
    manager = WebKit2.WebsiteDataManager.new_ephemeral()
else:
    manager = WebKit2.WebsiteDataManager(base_data_directory=f"{profile}/data", base_cache_directory=f"{profile}/cache")
context = WebKit2.WebContext(website_data_manager=manager)
context.set_automation_allowed(True)

ERRORS_HANDLER = "dewgridPageErrors"
ERRORS_SCRIPT = """(() => {
  const post = (text) => { try { window.webkit.messageHandlers.%s.postMessage(String(text)); } catch {} };
  const describe = (value) => value instanceof Error ? value.name + ': ' + value.message : String(value);
  addEventListener('error', (event) => post(event.error !== undefined && event.error !== null ? describe(event.error) : event.message));
  addEventListener('unhandledrejection', (event) => post('Unhandled Promise Rejection: ' + describe(event.reason)));
})();""" % ERRORS_HANDLER
content = WebKit2.UserContentManager()
content.add_script(WebKit2.UserScript(ERRORS_SCRIPT, WebKit2.UserContentInjectedFrames.ALL_FRAMES, WebKit2.UserScriptInjectionTime.START, None, None))
content.register_script_message_handler(ERRORS_HANDLER)


def page_error(_content, result):
    print("DEWGRID PAGE ERROR " + json.dumps(result.get_js_value().to_string()), file=sys.stderr, flush=True)


content.connect("script-message-received::" + ERRORS_HANDLER, page_error)


def show_in_window(view, width, height):
    window = Gtk.Window(default_width=width, default_height=height)
    window.add(view)
    window.show_all()
    window.present()
    view.connect("close", lambda *_: window.destroy())


def create_web_view(_session):
    view = WebKit2.WebView(web_context=context, settings=settings, user_content_manager=content, is_controlled_by_automation=True)
    view.connect("create", open_window)
    show_in_window(view, 1280, 900)
    return view


def open_window(opener, _navigation):
    """window.open: a view related to its opener (same process and session, window.opener set), in a
    window of its own, as a browser opens a popup. Without this handler WebKit opens nothing."""
    view = WebKit2.WebView(related_view=opener, settings=settings, user_content_manager=content, is_controlled_by_automation=True)
    view.connect("create", open_window)
    view.connect("ready-to-show", lambda v: show_in_window(v, 460, 620))
    return view


def automation_started(_context, session):
    info = WebKit2.ApplicationInfo()
    info.set_name("webkit-browser")
    info.set_version(WebKit2.get_major_version(), WebKit2.get_minor_version(), WebKit2.get_micro_version())
    session.set_application_info(info)
    session.connect("create-web-view", create_web_view)


context.connect("automation-started", automation_started)
Gtk.main()
