--[[
  facecloak for darktable: running facecloak-client for one exported file.

  One image is one small shell job: cloak into a temporary file beside the target, scrub it,
  then rename it onto the target. Whatever fails, the temporary file is removed and, where the
  caller says so, the uncloaked input too: an export never ends with an uncloaked file.
  Jobs run in the foreground (the export hook) or in the background (the storage, which waits
  for them in finalize); each leaves its exit code in a "done" file and its output in a log.
]]

local util = require((...):match("^(.-)[^/]*$") .. "util")

local runner = {}

-- Formats the engine writes back losslessly or at full JPEG quality (darktable's extensions).
runner.FORMATS = { jpg = true, jpeg = true, png = true, tif = true, tiff = true, webp = true }

local work_dir = nil

--- A private folder for logs and "done" files (created once per darktable session).
function runner.work_dir(tmp_root)
  if work_dir == nil then
    local handle = io.popen("mktemp -d " .. util.quote(tmp_root .. "/facecloak-dt.XXXXXX"))
    local path = handle and handle:read("l")
    if handle then
      handle:close()
    end
    if not path or path == "" then
      return nil
    end
    work_dir = path
  end
  return work_dir
end

--- The shell command that turns `input` into a cloaked (and scrubbed) `output`.
--  job: { input, output, log, done, client (words), env (table), mode, options (words),
--         scrub (bool), remove_input (bool: always), drop_output_on_failure (bool) }
function runner.command(job)
  local dir, name = util.dirname(job.output), util.basename(job.output)
  local stem, ext = util.split_ext(name)
  local tmp = dir .. "/." .. stem .. ".facecloak-tmp." .. ext
  local env = {}
  for key, value in pairs(job.env or {}) do
    env[#env + 1] = key .. "=" .. util.quote(value)
  end
  local prefix = (#env > 0 and (table.concat(env, " ") .. " ") or "")
    .. util.join_quoted(job.client)
  local cloak = { "cloak", job.input, tmp, "--overwrite", "--mode", job.mode }
  for _, word in ipairs(job.options or {}) do
    cloak[#cloak + 1] = word
  end
  local steps = {
    "mkdir -p " .. util.quote(dir),
    prefix .. " " .. util.join_quoted(cloak),
  }
  if job.scrub then
    steps[#steps + 1] = prefix .. " " .. util.join_quoted(
      { "scrub", tmp, "--in-place", "--sidecars", "delete" })
  end
  steps[#steps + 1] = "mv -f " .. util.quote(tmp) .. " " .. util.quote(job.output)
  local cleanup = { "rm -f " .. util.quote(tmp) }
  if job.drop_output_on_failure then
    cleanup[#cleanup + 1] = '[ "$rc" -eq 0 ] || rm -f ' .. util.quote(job.output)
  end
  if job.remove_input then
    cleanup[#cleanup + 1] = "rm -f " .. util.quote(job.input)
  end
  -- the private folder may have been tidied away since the job was planned
  return "mkdir -p " .. util.quote(util.dirname(job.log)) .. "; "
    .. "{ " .. table.concat(steps, " && ") .. "; } >" .. util.quote(job.log)
    .. " 2>&1 </dev/null; rc=$?; " .. table.concat(cleanup, "; ")
    .. "; echo $rc >" .. util.quote(job.done)
end

--- Start a job in the background; its "done" file appears when it ends.
function runner.start(job)
  os.remove(job.done)
  os.execute("( " .. runner.command(job) .. " ) >/dev/null 2>&1 &")
end

--- Run a job to its end; `execute` runs a shell command without holding darktable's Lua lock.
function runner.run(job, execute)
  os.remove(job.done)
  execute(runner.command(job))
  return runner.result(job)
end

--- nil while the job runs; else true, or false and the client's last line of output.
function runner.result(job)
  local done = util.read_all(job.done)
  if not done or not done:match("%d") then
    return nil
  end
  local code = tonumber(done:match("%d+"))
  local message = util.last_line(util.read_all(job.log))
  os.remove(job.done)
  os.remove(job.log) -- its last line is all the report needs
  if code == 0 then
    return true
  end
  return false, message or ("exit code " .. code)
end

--- Remove the private folder once no job uses it (os.remove only removes an empty folder),
--  so no export leaves anything behind in darktable's temporary folder.
function runner.tidy()
  if work_dir ~= nil and os.remove(work_dir) then
    work_dir = nil
  end
end

return runner
