-- Starts the other teams' work when a deal is won (the pipeline plugin's
-- deal.won): a delivery task, an invoice request for finance, a
-- customer-success owner with a kick-off task, and the contact made a
-- customer.
--
-- Needs the pipeline plugin (deals, activities, deal.won) and, for the
-- lifecycle stage, the identity plugin's contacts. On deal.won, in one
-- transaction with the event's delivery (so each happens once):
--   * a task (activities, kind "task") "Deliver: <deal>" for DELIVERY_OWNER
--     (nil: the deal's owner), due in DELIVERY_DUE_DAYS;
--   * a task "Invoice request: <deal> (<amount>)" for FINANCE_OWNER, due in
--     INVOICE_DUE_DAYS;
--   * deals.cs_owner set to one of CS_OWNERS (chosen from the deal's id: an
--     even spread that stays the same if the event is delivered again; a deal
--     that has a cs_owner keeps it) and a task "Kick-off: <deal>" for them;
--   * the deal's contact (contact_id; a merged contact's survivor) gets
--     lifecycle_stage = CONTACT_STAGE.
-- Tasks carry the deal's deal_id, contact_id, company_id and team. A deal or
-- contact deleted since is skipped with a warning in the log. Edit the
-- constants below for your teams.
local dates = require("dates")

local DELIVERY_OWNER = nil          -- nil: the deal's owner
local DELIVERY_DUE_DAYS = 3
local FINANCE_OWNER = "finance"
local INVOICE_DUE_DAYS = 1
local CS_OWNERS = {"customer-success"}
local KICKOFF_DUE_DAYS = 5
local CONTACT_STAGE = "customer"

local DAY = 86400000

-- A stable pick from a list: the same deal always gets the same entry.
local function pick(list, id)
  local h = 0
  for i = 1, #id do h = (h * 31 + id:byte(i)) % 1000000007 end
  return list[h % #list + 1]
end

local function task(deal, owner, subject, days)
  local t = {kind = "task", subject = subject, done = false, deal_id = deal.id,
             due_at = dates.iso(kith.time.now() + days * DAY)}
  if owner then t.owner = owner end
  for _, f in ipairs({"team", "contact_id", "company_id"}) do
    if deal[f] ~= nil then t[f] = deal[f] end
  end
  local rec, err = kith.entity.create("activities", t)
  if not rec then error("deal_won: task '" .. subject .. "': " .. err.message) end
end

local function make_customer(id)
  for _ = 1, 8 do -- follow merges to the surviving contact
    local c, err = kith.entity.get("contacts", id)
    if not c then
      kith.log.warn("deal_won: contact " .. id .. ": " .. err.message)
      return
    end
    if not c.merged_into then
      if c.lifecycle_stage == CONTACT_STAGE then return end
      local ok, uerr = kith.entity.update("contacts", id, {lifecycle_stage = CONTACT_STAGE})
      if not ok then error("deal_won: contact " .. id .. ": " .. uerr.message) end
      return
    end
    id = c.merged_into
  end
end

kith.on("deal.won", {name = "cross-team"}, function(ev)
  local id = type(ev.payload) == "table" and ev.payload.deal
  if type(id) ~= "string" then return end
  local deal, err = kith.entity.get("deals", id)
  if not deal then
    kith.log.warn("deal_won: deal " .. id .. ": " .. err.message)
    return
  end
  local label = deal.name or id
  task(deal, DELIVERY_OWNER or deal.owner, "Deliver: " .. label, DELIVERY_DUE_DAYS)
  local amount = deal.amount ~= nil and tostring(deal.amount) or "no amount"
  task(deal, FINANCE_OWNER, "Invoice request: " .. label .. " (" .. amount .. ")", INVOICE_DUE_DAYS)
  local cs = deal.cs_owner
  if cs == nil and #CS_OWNERS > 0 then
    cs = pick(CS_OWNERS, id)
    local ok, uerr = kith.entity.update("deals", id, {cs_owner = cs})
    if not ok then error("deal_won: deal " .. id .. ": " .. uerr.message) end
  end
  if cs ~= nil then task(deal, cs, "Kick-off: " .. label, KICKOFF_DUE_DAYS) end
  if deal.contact_id then make_customer(deal.contact_id) end
end)
