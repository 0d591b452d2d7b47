--[[
  facecloak for darktable: where the Cloak faces storage writes each file.

  The folder and the file name take variables like darktable's own file storage
  ($(FILE_FOLDER), $(FILE_NAME), $(SEQUENCE), ...). darktable's variable expansion is not
  reachable from Lua, so the common ones are expanded here.
]]

local util = require((...):match("^(.-)[^/]*$") .. "util")

local naming = {}

naming.DEFAULT_FOLDER = "$(FILE_FOLDER)/cloaked"
naming.DEFAULT_NAME = "$(FILE_NAME)"

local function date_parts(text)
  local y, mo, d, h, mi, s = (text or ""):match("(%d+)[:%-](%d+)[:%-](%d+)[ T](%d+):(%d+):(%d+)")
  return { YEAR = y, MONTH = mo, DAY = d, HOUR = h, MINUTE = mi, SECOND = s }
end

--- The values of the variables for one image (a darktable image object, or a plain table).
function naming.variables(image, sequence)
  local stem, ext = util.split_ext(image.filename or "image")
  local values = {
    FILE_FOLDER = image.path or ".",
    FILE_NAME = stem,
    FILE_EXTENSION = ext,
    SEQUENCE = string.format("%04d", sequence or 1),
    ID = tostring(image.id or 0),
    VERSION = tostring(image.duplicate_index or 0),
    ROLL_NAME = util.basename(image.path or "."),
    HOME = os.getenv("HOME") or "",
  }
  for key, value in pairs(date_parts(os.date("%Y:%m:%d %H:%M:%S"))) do
    values[key] = value
  end
  for key, value in pairs(date_parts(image.exif_datetime_taken)) do
    values["EXIF_" .. key] = value
  end
  return values
end

--- The pattern with its variables replaced; unknown variables are an error, not a guess.
function naming.expand(pattern, values)
  local unknown = nil
  local expanded = pattern:gsub("%$%(([%w_]+)%)", function(name)
    local value = values[name]
    if value == nil then
      unknown = unknown or name
      return ""
    end
    return value
  end)
  if unknown then
    return nil, unknown
  end
  if expanded:sub(1, 2) == "~/" then
    expanded = (os.getenv("HOME") or "") .. expanded:sub(2)
  end
  return expanded
end

--- The target path for one image, or nil and a message.
--  reserved: paths already promised to earlier images of this export (they may not exist yet).
function naming.target(folder_pattern, name_pattern, values, extension, overwrite, reserved)
  local folder, bad = naming.expand(folder_pattern ~= "" and folder_pattern or ".", values)
  if not folder then
    return nil, "unknown variable $(" .. bad .. ") in the folder"
  end
  local name
  name, bad = naming.expand(name_pattern ~= "" and name_pattern or naming.DEFAULT_NAME, values)
  if not name then
    return nil, "unknown variable $(" .. bad .. ") in the file name"
  end
  name = name:gsub("/", "_")
  local base = folder:gsub("/+$", "") .. "/" .. name
  local path = base .. "." .. extension
  local n = 0
  while (reserved[path] or (not overwrite and util.exists(path))) and n < 9999 do
    n = n + 1
    path = string.format("%s_%02d.%s", base, n, extension)
  end
  reserved[path] = true
  return path
end

return naming
