module github.com/nexxo-cache/nexxo-cache/bindings/go

go 1.22
