-- Scores leads with rules: each rule names the lead fields it reads, its
-- version and the points it gives. The score is computed again, inside the
-- write, whenever one of those fields changes; GET /v1/leads/{id}/score
-- lists every rule that gave points, with its name and version.
--
-- Collection: leads (the leads plugin, which also keeps the rest: a lead
-- whose score reaches its score_threshold, 60 by default, is tagged hot
-- once, lead.hot is emitted and a follow-up task is made for its owner).
-- The default rules: complete contact information +10, visited the pricing
-- page +15, downloaded a white paper +20, more than 3 visits +10, in a key
-- industry +30; minus DECAY_PER_WEEK for every week without a touch. Edit
-- RULES, KEY_INDUSTRIES and DECAY_PER_WEEK below; bump a rule's version when
-- you change what it means; after an edit, POST /v1/leads/rescore?all=true
-- scores every lead again.
local KEY_INDUSTRIES = {
  ["software"] = true,
  ["financial services"] = true,
  ["banking, investment and insurance"] = true,
  ["healthcare"] = true,
}
local DECAY_PER_WEEK = 5

local function present(v)
  return type(v) == "string" and v:find("%S") ~= nil
end

-- Whether the lead's events (kept by the leads plugin from its touches, as
-- "kind:page or content") have one of this kind mentioning word.
local function has_event(lead, kind, word)
  for _, e in ipairs(lead.events or {}) do
    if e:sub(1, #kind + 1) == kind .. ":" and e:lower():find(word, 1, true) then return true end
  end
  return false
end

local RULES = {
  {name = "complete_contact", version = 1, fields = {"name", "email", "phone", "company"},
   points = function(l)
     return (present(l.name) and present(l.email) and present(l.phone) and present(l.company))
       and 10 or 0
   end},
  {name = "pricing_page", version = 1, fields = {"events"},
   points = function(l) return has_event(l, "visit", "pricing") and 15 or 0 end},
  {name = "white_paper", version = 1, fields = {"events"},
   points = function(l)
     return (has_event(l, "download", "white") or has_event(l, "download", "whitepaper")) and 20 or 0
   end},
  {name = "visits_over_3", version = 1, fields = {"visits"},
   points = function(l) return (tonumber(l.visits) or 0) > 3 and 10 or 0 end},
  {name = "key_industry", version = 1, fields = {"industry"},
   points = function(l)
     return (type(l.industry) == "string" and KEY_INDUSTRIES[l.industry:lower()]) and 30 or 0
   end},
  {name = "inactivity_decay", version = 1, fields = {"inactive_weeks"},
   points = function(l) return -DECAY_PER_WEEK * (tonumber(l.inactive_weeks) or 0) end},
}

local function score(ev)
  local lead, total, detail = ev.record, 0, {}
  for _, rule in ipairs(RULES) do
    local p = rule.points(lead)
    if p ~= 0 then
      total = total + p
      detail[#detail + 1] = {rule = rule.name, version = rule.version, points = p}
    end
  end
  lead.score = math.max(0, math.floor(total))
  -- an empty table would read as an object: no rule scored, no detail
  lead.score_detail = #detail > 0 and detail or kith.json.null
end

-- the fields any rule reads, active_at (inactive_weeks follows it) and
-- rescored_at (written by the daily rescoring and POST /v1/leads/rescore)
local inputs, seen = {"rescored_at", "active_at"}, {}
for _, rule in ipairs(RULES) do
  for _, f in ipairs(rule.fields) do
    if not seen[f] then
      seen[f] = true
      inputs[#inputs + 1] = f
    end
  end
end

kith.on("leads.before_create", {name = "score-on-create"}, score)
kith.on("leads.before_update", {name = "score-on-update", fields = inputs}, score)
