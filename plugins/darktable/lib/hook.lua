--[[
  facecloak for darktable: the export hook.

  darktable raises "intermediate-export-image" for every exported file, after writing its
  metadata and before the storage (file on disk, e-mail, galleries) takes the file; what the
  handler leaves in the file is what gets exported. So the cloak runs here, synchronously:
  the engine server stays warm between images, but the file cannot be handed on before it is
  cloaked. On any failure the file is deleted, so the storage has nothing uncloaked to take.
]]

local dt = require "darktable"
local here = (...):match("^(.-)[^/]*$")
local util = require(here .. "util")
local runner = require(here .. "runner")
local settings = require(here .. "settings")
local report = require(here .. "report")
local _ = require(here .. "i18n")

local hook = { EVENT = "intermediate-export-image", NAME = "facecloak_export_hook" }

local function run_command(command)
  if dt.control and dt.control.execute then -- lets darktable go on while the engine works
    return dt.control.execute(command)
  end
  return os.execute(command)
end

local function fail(name, filename, reason)
  os.remove(filename)
  report.failed(name, reason)
end

--- The event handler: cloak (and scrub) `filename` in place, or delete it.
function hook.on_export(event, image, filename, format, storage)
  local current = settings.current()
  if not current.hook then
    return
  end
  if storage and storage.plugin_name == hook.storage_name then
    return -- the Cloak faces storage cloaks its own files
  end
  local name = image and image.filename or util.basename(filename)
  local _stem, ext = util.split_ext(util.basename(filename))
  if not runner.FORMATS[ext:lower()] then
    return fail(name, filename, string.format(_("facecloak cannot write %s files; export as "
      .. "JPEG, PNG, TIFF or WebP"), ext))
  end
  local client, problem = settings.client(current)
  if not client then
    return fail(name, filename, problem)
  end
  local work = runner.work_dir(dt.configuration.tmp_dir)
  if not work then
    return fail(name, filename, _("cannot create a temporary folder"))
  end
  hook.count = (hook.count or 0) + 1
  local tag = work .. "/hook-" .. hook.count
  if dt.configuration.has_gui then
    dt.print(string.format(_("facecloak: cloaking %s"), name))
  end
  local ok, message = runner.run({
    input = filename, output = filename, log = tag .. ".log", done = tag .. ".done",
    client = client.words, env = client.env, options = client.options,
    mode = current.hook_mode, scrub = current.hook_scrub, drop_output_on_failure = true,
  }, run_command)
  runner.tidy()
  if ok then
    report.done(name, filename)
  else -- the job deletes the export itself; this covers a job that was killed midway
    fail(name, filename, message or _("the engine did not finish"))
  end
end

--- darktable-cli ignores what event handlers do and exits 0; a script driving it needs to
--  know that an image was not exported, so end with status 1 then (darktable-cli only).
function hook.on_exit()
  if report.failures > 0 and settings.current().cli_exit_code then
    io.stderr:write(string.format("facecloak: %d image(s) FAILED and were not exported; "
      .. "exit status 1\n", report.failures))
    io.stderr:flush()
    os.exit(1)
  end
end

function hook.register(storage_name)
  hook.storage_name = storage_name
  dt.register_event(hook.NAME, hook.EVENT, hook.on_export)
  if not dt.configuration.has_gui then
    dt.register_event(hook.NAME, "exit", hook.on_exit)
  end
end

function hook.destroy()
  dt.destroy_event(hook.NAME, hook.EVENT)
  if not dt.configuration.has_gui then
    dt.destroy_event(hook.NAME, "exit")
  end
end

return hook
