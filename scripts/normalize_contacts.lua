-- Keeps contacts tidy as they are written: the e-mail address trimmed and
-- lower-cased, names and the company trimmed with inner runs of spaces made
-- one.
--
-- Collection: contacts. Fields, each only if the schema has it and the
-- record sets it: email (normalised with fields.email; a value that is not
-- shaped like an address is only trimmed, and the schema's email type then
-- refuses it with its own message), name, first_name, last_name, company.
-- A name that is blank after trimming is removed, so a required name fails
-- as missing rather than being stored as spaces. Edit EMAIL_FIELDS and
-- NAME_FIELDS below to cover other fields or collections.
local fields = require("fields")

local COLLECTION = "contacts"
local EMAIL_FIELDS = {"email"}
local NAME_FIELDS = {"name", "first_name", "last_name", "company"}

local watched = {}
for _, f in ipairs(EMAIL_FIELDS) do watched[#watched + 1] = f end
for _, f in ipairs(NAME_FIELDS) do watched[#watched + 1] = f end

local function normalize(ev)
  local rec = ev.record
  for _, f in ipairs(EMAIL_FIELDS) do
    local v = rec[f]
    if type(v) == "string" then rec[f] = fields.email(v) or fields.trim(v) end
  end
  for _, f in ipairs(NAME_FIELDS) do
    local v = rec[f]
    if type(v) == "string" then
      v = fields.squish(v)
      rec[f] = v ~= "" and v or kith.json.null
    end
  end
end

kith.on(COLLECTION .. ".before_create", {name = "normalize-create"}, normalize)
kith.on(COLLECTION .. ".before_update", {name = "normalize-update", fields = watched}, normalize)
