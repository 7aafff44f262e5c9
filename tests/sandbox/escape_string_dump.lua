-- expect: field 'dump'
return string.dump(function() end)
