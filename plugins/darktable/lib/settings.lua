--[[
  facecloak for darktable: settings, from darktable's preferences (lua/facecloak/<key> in
  darktablerc, or --conf lua/facecloak/<key>=value on the command line) and, for the engine's
  location, from the file the installer writes beside the script.
]]

local dt = require "darktable"
local here = (...):match("^(.-)[^/]*$")
local util = require(here .. "util")
local naming = require(here .. "naming")
local _ = require(here .. "i18n")

local settings = { SCRIPT = "facecloak", MODES = { "low", "mid", "high" } }

local function read(key)
  return dt.preferences.read(settings.SCRIPT, key, "string") or ""
end

function settings.write(key, value)
  dt.preferences.write(settings.SCRIPT, key, "string", tostring(value))
end

local function valid_mode(text, default)
  for _, mode in ipairs(settings.MODES) do
    if text == mode then
      return mode
    end
  end
  return default
end

--- The file the installer writes: client = ..., engine_python = ...
function settings.installed_file()
  return dt.configuration.config_dir .. "/lua/facecloak/engine.conf"
end

--- A snapshot of every setting, read now.
function settings.current()
  local installed = util.read_settings(settings.installed_file())
  local current = {
    client = read("client") ~= "" and read("client") or (installed.client or ""),
    engine_python = read("engine_python") ~= "" and read("engine_python")
      or (installed.engine_python or ""),
    hook = util.parse_bool(read("hook"), false),
    hook_mode = valid_mode(read("hook_mode"), "mid"),
    hook_scrub = util.parse_bool(read("hook_scrub"), true),
    options = read("options"),
    cli_exit_code = util.parse_bool(read("cli_exit_code"), true),
    jobs = math.max(1, math.min(8, tonumber(read("jobs")) or 2)),
    storage_folder = read("storage_folder") ~= "" and read("storage_folder")
      or naming.DEFAULT_FOLDER,
    storage_name = read("storage_name") ~= "" and read("storage_name") or naming.DEFAULT_NAME,
    storage_mode = valid_mode(read("storage_mode"), "mid"),
    storage_scrub = util.parse_bool(read("storage_scrub"), true),
    storage_overwrite = util.parse_bool(read("storage_overwrite"), false),
  }
  return current
end

--- How to run the client: words and environment, or nil and a message for the user.
function settings.client(current)
  local path = current.client
  if path == "" then
    return nil, _("the facecloak engine is not set up: run installers/darktable.py install, "
      .. "or set the facecloak-client path in preferences > lua options")
  end
  path = path:gsub("^~/", (os.getenv("HOME") or "") .. "/")
  if not util.exists(path) then
    return nil, string.format(_("facecloak-client not found at %s: reinstall facecloak or fix "
      .. "the path in preferences > lua options"), path)
  end
  local options, bad = util.split_options(current.options)
  if not options then
    return nil, string.format(_("refusing the engine option %s: only --name and plain values "
      .. "are allowed"), bad)
  end
  local env = {}
  if current.engine_python ~= "" then
    env.FACECLOAK_ENGINE_PYTHON = current.engine_python
  end
  return { words = { path }, env = env, options = options }
end

--- The entries shown under preferences > lua options (GUI only).
function settings.register_preferences()
  if settings.registered then -- a restart from script_manager: they are there already
    return
  end
  settings.registered = true
  local p = dt.preferences
  p.register(settings.SCRIPT, "hook", "bool", _("facecloak: cloak every export"),
    _("cloak faces and scrub metadata in every exported file, whatever the storage "
      .. "(file on disk, e-mail, galleries)"), false)
  p.register(settings.SCRIPT, "hook_mode", "enum", _("facecloak: strength for every export"),
    _("low is fastest and faintest; mid is the default; high is strongest"), "mid",
    "low", "mid", "high")
  p.register(settings.SCRIPT, "hook_scrub", "bool", _("facecloak: scrub metadata of every export"),
    _("also run the metadata scrub on each cloaked file"), true)
  p.register(settings.SCRIPT, "client", "file", _("facecloak: facecloak-client command"),
    _("the bridge client of the facecloak engine; empty: the one the installer recorded"), "")
  p.register(settings.SCRIPT, "options", "string", _("facecloak: expert engine options"),
    _("extra facecloak-client cloak options, e.g. --steps 10"), "")
end

return settings
