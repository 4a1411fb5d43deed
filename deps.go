//go:build tools

package coffer

import (
	_ "github.com/aws/aws-sdk-go-v2/aws"
	_ "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/credentials"
	_ "github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/aws/smithy-go"
	_ "github.com/dgraph-io/ristretto/v2"
	_ "github.com/hanwen/go-fuse/v2/fs"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rfjakob/eme"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/crypto/hkdf"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
)
