-- expect: is not an event
kith.on("contacts.before_crate", function() end)
