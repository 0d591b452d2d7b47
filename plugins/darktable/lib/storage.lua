--[[
  facecloak for darktable: the "Cloak faces" storage of the export module (GUI only).

  darktable develops each image into a temporary file and calls store(); store() hands the file
  to a background facecloak-client job and returns, so darktable develops the next image while
  the engine server cloaks this one (it keeps its models loaded across the batch). finalize()
  waits for the jobs, shows progress, and reports each failure by name; one failure never
  stops the others. Files that fail are never written to the target folder.
]]

local dt = require "darktable"
local here = (...):match("^(.-)[^/]*$")
local util = require(here .. "util")
local naming = require(here .. "naming")
local runner = require(here .. "runner")
local settings = require(here .. "settings")
local report = require(here .. "report")
local _ = require(here .. "i18n")

local storage = { NAME = "facecloak", status = { batches = 0, done = 0, failed = {} } }

local POLL_MS = 200

local function supported(_storage, format)
  return runner.FORMATS[(format.extension or ""):lower()] == true
end

local function set_progress(extra)
  if extra.job then
    extra.job.percent = extra.total > 0 and (extra.finished / extra.total) or 1
  end
end

--- Collect finished jobs; returns how many are still running.
local function reap(extra)
  local running = 0
  for _, job in ipairs(extra.jobs) do
    if not job.finished then
      local ok, message = runner.result(job)
      if ok == nil then
        running = running + 1
      else
        job.finished = true
        extra.finished = extra.finished + 1
        if ok then
          extra.done = extra.done + 1
          report.done(job.name, job.output)
        else
          extra.failed[#extra.failed + 1] = job.name
          report.failed(job.name, message)
        end
        set_progress(extra)
      end
    end
  end
  return running
end

local function skip(extra, name, reason)
  extra.finished = extra.finished + 1
  extra.failed[#extra.failed + 1] = name
  report.failed(name, reason)
  set_progress(extra)
end

local function initialize(_storage, format, images, _high_quality, extra)
  local current = settings.current()
  extra.settings = current
  extra.jobs, extra.reserved, extra.failed = {}, {}, {}
  extra.total, extra.finished, extra.done = #images, 0, 0
  extra.client, extra.problem = settings.client(current)
  extra.work = runner.work_dir(dt.configuration.tmp_dir)
  if extra.client and not extra.work then
    extra.client, extra.problem = nil, _("cannot create a temporary folder")
  end
  if extra.problem then
    report.info(extra.problem)
  end
  if dt.gui and dt.gui.create_job then
    extra.job = dt.gui.create_job(_("cloaking faces"), true, function()
      extra.cancelled = true
    end)
  end
  return nil
end

local function store(_storage, image, format, filename, number, _total, _hq, extra)
  local name = image.filename
  if not extra.client then
    os.remove(filename)
    return skip(extra, name, extra.problem)
  end
  if extra.cancelled then
    os.remove(filename)
    return skip(extra, name, _("cancelled"))
  end
  local current = extra.settings
  local _stem, ext = util.split_ext(util.basename(filename))
  local target, problem = naming.target(current.storage_folder, current.storage_name,
    naming.variables(image, number), ext, current.storage_overwrite, extra.reserved)
  if not target then
    os.remove(filename)
    return skip(extra, name, problem)
  end
  -- darktable names its temporary file after the image only: move it out of the way at once
  local tag = string.format("%s/store-%d-%d", extra.work, os.time(), number)
  local input = tag .. "." .. ext
  if not os.rename(filename, input) then
    input = filename
  end
  while reap(extra) >= current.jobs do
    dt.control.sleep(POLL_MS)
  end
  local job = {
    name = name, input = input, output = target, log = tag .. ".log", done = tag .. ".done",
    client = extra.client.words, env = extra.client.env, options = extra.client.options,
    mode = current.storage_mode, scrub = current.storage_scrub, remove_input = true,
  }
  extra.jobs[#extra.jobs + 1] = job
  runner.start(job)
end

local function finalize(_storage, _image_table, extra)
  while reap(extra) > 0 do
    dt.control.sleep(POLL_MS)
  end
  report.summary(extra.done, extra.failed)
  runner.tidy()
  if extra.job then
    extra.job.valid = false
  end
  local status = storage.status
  status.batches, status.done = status.batches + 1, status.done + extra.done
  for _, name in ipairs(extra.failed) do
    status.failed[#status.failed + 1] = name
  end
end

--- The widget under the storage in the export module; each change is saved at once.
local function build_widget()
  local current = settings.current()
  local folder = dt.new_widget("entry") {
    text = current.storage_folder,
    placeholder = naming.DEFAULT_FOLDER,
    tooltip = _("folder of the cloaked files; variables as in darktable: $(FILE_FOLDER), "
      .. "$(ROLL_NAME), $(YEAR), ..."),
    editable = true,
  }
  local chooser = dt.new_widget("file_chooser_button") {
    title = _("select the folder for cloaked files"),
    is_directory = true,
    changed_callback = function(self)
      folder.text = self.value
      settings.write("storage_folder", self.value)
    end,
  }
  local name = dt.new_widget("entry") {
    text = current.storage_name,
    placeholder = naming.DEFAULT_NAME,
    tooltip = _("file name without extension; $(FILE_NAME), $(SEQUENCE), $(EXIF_YEAR), ..."),
    editable = true,
  }
  local mode = dt.new_widget("combobox") {
    label = _("mode"),
    tooltip = _("strength of the cloak: low is fastest and faintest, high is strongest"),
    changed_callback = function(self)
      settings.write("storage_mode", self.value)
    end,
    "low", "mid", "high",
  }
  mode.selected = ({ low = 1, mid = 2, high = 3 })[current.storage_mode]
  local scrub = dt.new_widget("check_button") {
    label = _("scrub metadata"),
    tooltip = _("remove GPS, camera serials, tags, creator and every other metadata"),
    value = current.storage_scrub,
    clicked_callback = function(self)
      settings.write("storage_scrub", self.value and "TRUE" or "FALSE")
    end,
  }
  local overwrite = dt.new_widget("check_button") {
    label = _("overwrite existing files"),
    tooltip = _("off: add _01, _02, ... to the name of a file that exists already"),
    value = current.storage_overwrite,
    clicked_callback = function(self)
      settings.write("storage_overwrite", self.value and "TRUE" or "FALSE")
    end,
  }
  -- entries have no change callback: save their text whenever an export starts
  storage.save_entries = function()
    settings.write("storage_folder", folder.text)
    settings.write("storage_name", name.text)
  end
  return dt.new_widget("box") {
    orientation = "vertical",
    dt.new_widget("label") { label = _("folder"), halign = "start" },
    dt.new_widget("box") { orientation = "horizontal", folder, chooser },
    dt.new_widget("label") { label = _("file name"), halign = "start" },
    name, mode, scrub, overwrite,
  }
end

function storage.register()
  local widget = build_widget()
  local function initialize_saving(...)
    storage.save_entries()
    return initialize(...)
  end
  dt.register_storage(storage.NAME, _("cloak faces"), store, finalize, supported,
    initialize_saving, widget)
end

function storage.destroy()
  dt.destroy_storage(storage.NAME)
end

return storage
