--[[
  Test driver for darktable's GUI (run under xvfb-run with --luacmd): import the photos listed
  in FACECLOAK_TEST_INPUTS (one path a line), give them darktable metadata (tags, creator, GPS),
  select them, optionally take a screenshot (FACECLOAK_TEST_SHOT, a shell command), export them
  through the storage set with --conf plugins/lighttable/export/storage_name, wait for the
  facecloak storage to finish the batch, and quit.
]]

local dt = require "darktable"
local facecloak = require "facecloak/facecloak"

local function log(text)
  io.stderr:write("gui_driver: ", text, "\n")
  io.stderr:flush()
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  return lines
end

local function tag_and_select(paths)
  local tag = dt.tags.create("people|private person")
  local images = {}
  for _, path in ipairs(paths) do
    local image = dt.database.import(path)
    image.creator = "Jane Photographer"
    image.publisher = "Private Publisher"
    image.latitude, image.longitude = 48.8584, 2.2945
    dt.tags.attach(tag, image)
    images[#images + 1] = image
  end
  dt.gui.selection(images)
  return images
end

local function now() -- wall-clock seconds with a fraction, for the benchmark
  local handle = io.popen("date +%s.%N")
  local text = handle:read("l")
  handle:close()
  return text
end

local function wait_for(condition, seconds)
  local waited = 0
  while not condition() and waited < seconds * 1000 do
    dt.control.sleep(250)
    waited = waited + 250
  end
  return condition()
end

local function run()
  -- darktable 4.2 can deadlock when a dispatched thread makes its first GUI call while the
  -- main loop is still starting: wait for the lighttable, then for the start-up to settle
  wait_for(function() return dt.gui.current_view() == dt.gui.views.lighttable end, 120)
  dt.control.sleep(3000)
  log("starting")
  local images = tag_and_select(read_lines(os.getenv("FACECLOAK_TEST_INPUTS")))
  log("imported and selected " .. #images)
  local shot = os.getenv("FACECLOAK_TEST_SHOT")
  if shot and shot ~= "" then
    dt.control.sleep(1500)
    log("screenshot: " .. tostring(os.execute(shot)))
  end
  local batches = facecloak.status.batches
  log("time export-start " .. now())
  dt.gui.action("lib/export/export", 0, "", "", 1.0)
  local finished = wait_for(function() return facecloak.status.batches > batches end,
    tonumber(os.getenv("FACECLOAK_TEST_TIMEOUT") or "240"))
  log("time export-end " .. now())
  log(finished and ("export finished: " .. facecloak.status.done .. " done, "
    .. #facecloak.status.failed .. " failed") or "export did not finish in time")
  dt.gui.action("global/quit", 0, "", "", 1.0)
end

dt.control.dispatch(function()
  local ok, problem = pcall(run)
  if not ok then -- say why, and quit rather than leave the GUI waiting for the timeout
    log("driver error: " .. tostring(problem))
    dt.gui.action("global/quit", 0, "", "", 1.0)
  end
end)
