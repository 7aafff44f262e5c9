-- expect: module 'os' is not a Kith module
-- require serves only Kith's own scripts/lib: no path, no other file, no
-- library, no package table or loader cache to reach through.
local refused = {
  "../normalize_contacts", "../../CMakeLists", "../lib/fields", "/etc/passwd", "lib/fields",
  "fields.lua", "fields/../dates", "./fields", "..", ".fields", "fields.", "a..b", "Fields",
  "fields\0", "fields ", "~/x", "", ("a"):rep(65), "package", "debug", "io", "os", "string",
  "kith", "_G", "normalize_contacts", "lib.fields", "%s", "fields;dates",
}
for _, name in ipairs(refused) do
  local ok, err = pcall(require, name)
  assert(not ok, name .. " was served")
  assert(tostring(err):find("is not a Kith module", 1, true), name .. ": " .. tostring(err))
end
assert(not pcall(require), "no name")
assert(not pcall(require, {}), "a table for a name")
assert(package == nil, "no package library")
assert(type(require) == "function")
assert(not pcall(function() require.path = "/" end))
return require("os")
