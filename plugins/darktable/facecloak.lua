--[[
  facecloak.lua - cloak faces and scrub metadata as darktable exports

  copyright (c) the facecloak authors; GPL-3.0-or-later, like darktable's lua-scripts
]]
--[[
  facecloak - cloak the faces in exported photos against face recognition

  Two ways to use it:
  * the storage "cloak faces" in the export module: pick a folder and a file name pattern,
    the mode (low, mid, high) and whether to scrub metadata; exported files are cloaked and
    scrubbed there;
  * the export hook (preferences > lua options > "facecloak: cloak every export", or
    --conf lua/facecloak/hook=TRUE for darktable-cli): every exported file, whatever the
    storage, is cloaked and scrubbed before it leaves darktable.

  ADDITIONAL SOFTWARE NEEDED FOR THIS SCRIPT
  * the facecloak engine and its facecloak-client command (installers/darktable.py records
    where they are; or set the path in preferences > lua options)

  USAGE
  * installers/darktable.py install, which copies this folder to <configdir>/lua/facecloak and
    adds require "facecloak/facecloak" to luarc (or start it from script_manager)

  A file that cannot be cloaked is never exported uncloaked: it is deleted and reported by name.
]]

local dt = require "darktable"
local here = (...):match("^(.-)[^/]*$") .. "lib/"
local _ = require(here .. "i18n")

local MIN_API = { 7, 0, 0 } -- darktable 3.6: dt.control.execute, named events
local MIN_API_TEXT = "7.0.0"

local script_data = {}

script_data.metadata = {
  name = _("facecloak"),
  purpose = _("cloak faces and scrub metadata on export"),
  author = "facecloak authors",
  help = "docs/darktable.md in the facecloak repository",
}

script_data.destroy = nil
script_data.destroy_method = nil -- storage and event are removed for real, not hidden
script_data.restart = nil
script_data.show = nil

local function api_too_old()
  local version = dt.configuration.api_version_string or "0.0.0"
  local parts = {}
  for number in version:gmatch("%d+") do
    parts[#parts + 1] = tonumber(number)
  end
  for i = 1, 3 do
    local have, need = parts[i] or 0, MIN_API[i]
    if have ~= need then
      return have < need, version
    end
  end
  return false, version
end

local too_old, version = api_too_old()
if too_old then
  local message = string.format(_("facecloak needs darktable 3.6 or newer (Lua API %s); this "
    .. "darktable has Lua API %s. Nothing will be cloaked."), MIN_API_TEXT, version)
  io.stderr:write("facecloak: ", message, "\n")
  dt.print_error(message)
  if dt.configuration.has_gui then
    dt.print(message)
  end
  script_data.destroy = function() end
  return script_data
end

local settings = require(here .. "settings")
local hook = require(here .. "hook")
local storage = require(here .. "storage")

local function start()
  hook.register(storage.NAME)
  if dt.configuration.has_gui then -- widgets hang darktable-cli; storages are GUI-only anyway
    storage.register()
  end
end

local function destroy()
  hook.destroy()
  if dt.configuration.has_gui then
    storage.destroy()
  end
end

if dt.configuration.has_gui then
  settings.register_preferences()
end
start()

script_data.destroy = destroy
script_data.restart = start
script_data.status = storage.status -- read by the tests: batches finished, images done, failures

return script_data
