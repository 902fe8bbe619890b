module nexxocache

go 1.22
