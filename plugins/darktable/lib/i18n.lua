--[[
  facecloak for darktable: translatable strings.

  Messages are looked up in the "facecloak" text domain (catalogues under
  <configdir>/lua/locale/, as for the lua-scripts collection); untranslated ones stay English.
]]

local dt = require "darktable"

local DOMAIN = "facecloak"
local gettext = dt.gettext

if gettext.bindtextdomain then -- gone from newer Lua APIs, where the domain is found by name
  pcall(gettext.bindtextdomain, DOMAIN, dt.configuration.config_dir .. "/lua/locale/")
end

return function(msgid)
  if gettext.dgettext then
    return gettext.dgettext(DOMAIN, msgid)
  elseif gettext.gettext then
    return gettext.gettext(msgid)
  end
  return msgid
end
