module tidepool.dev/tidepool-cni

go 1.26
