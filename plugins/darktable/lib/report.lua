--[[
  facecloak for darktable: telling the user what happened to each image.

  Every failure names the image and says why, on screen (GUI), in darktable's log and on
  stderr (so darktable-cli runs and tests see it too).
]]

local dt = require "darktable"
local _ = require((...):match("^(.-)[^/]*$") .. "i18n")

local report = { failures = 0, successes = 0 }

local function say(text, is_error)
  io.stderr:write("facecloak: ", text, "\n")
  io.stderr:flush()
  if is_error then
    dt.print_error("facecloak: " .. text)
  else
    dt.print_log("facecloak: " .. text)
  end
  if dt.configuration.has_gui then
    dt.print("facecloak: " .. text)
  end
end

function report.done(name, target)
  report.successes = report.successes + 1
  say(string.format(_("cloaked %s -> %s"), name, target), false)
end

function report.failed(name, reason)
  report.failures = report.failures + 1
  say(string.format(_("FAILED %s: %s (nothing was exported for it)"), name, reason), true)
end

function report.info(text)
  say(text, false)
end

--- One line after a batch: how many were cloaked, and which failed.
function report.summary(done, failed_names)
  if #failed_names == 0 then
    report.info(string.format(_("%d image(s) exported cloaked"), done))
  else
    say(string.format(_("%d image(s) exported cloaked, %d FAILED: %s"), done, #failed_names,
      table.concat(failed_names, ", ")), true)
  end
end

return report
