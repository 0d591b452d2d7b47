--[[
  facecloak for darktable: small helpers (shell quoting, paths, files, settings).

  Everything that reaches a shell goes through quote(), so file names with spaces, quotes or
  dollar signs cannot change the command that runs.
]]

local util = {}

--- One shell word: 'text' with every ' written as '\''.
function util.quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

--- Words, each quoted, joined by spaces.
function util.join_quoted(words)
  local quoted = {}
  for i, word in ipairs(words) do
    quoted[i] = util.quote(word)
  end
  return table.concat(quoted, " ")
end

function util.basename(path)
  return (path:match("([^/]+)/*$")) or path
end

function util.dirname(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then
    return "."
  end
  return dir == "" and "/" or dir
end

--- "name.ext" -> "name", "ext" (ext without the dot; "" when there is none).
function util.split_ext(name)
  local stem, ext = name:match("^(.+)%.([^./]+)$")
  if stem then
    return stem, ext
  end
  return name, ""
end

function util.exists(path)
  local handle = io.open(path, "rb")
  if handle then
    handle:close()
    return true
  end
  return false
end

function util.read_all(path)
  local handle = io.open(path, "rb")
  if not handle then
    return nil
  end
  local text = handle:read("a")
  handle:close()
  return text
end

--- The last non-empty line of a text, trimmed (a command's error message).
function util.last_line(text)
  local last = nil
  for line in (text or ""):gmatch("[^\n]+") do
    local trimmed = line:match("^%s*(.-)%s*$")
    if trimmed ~= "" then
      last = trimmed
    end
  end
  return last
end

--- "TRUE", "true", "1", "yes", "on" are true; "" is the default; anything else false.
function util.parse_bool(text, default)
  if text == nil or text == "" then
    return default
  end
  local lowered = text:lower()
  return lowered == "true" or lowered == "1" or lowered == "yes" or lowered == "on"
end

--- Expert options for facecloak-client as words, or nil and the offending word.
--  Only "--option" and plain values (letters, digits, . - _) pass: no shell syntax at all.
function util.split_options(text)
  local words = {}
  for word in (text or ""):gmatch("%S+") do
    if not (word:match("^%-%-%a[%w%-]*$") or word:match("^[%w%._%-]+$")) then
      return nil, word
    end
    words[#words + 1] = word
  end
  return words
end

--- key = value lines (# comments) from the file the installer writes; {} when absent.
function util.read_settings(path)
  local settings = {}
  local text = util.read_all(path)
  for line in (text or ""):gmatch("[^\n]+") do
    local key, value = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if key and not line:match("^%s*#") then
      settings[key] = value
    end
  end
  return settings
end

return util
