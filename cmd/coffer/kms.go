package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/spf13/pflag"

	"github.com/cofferfs/coffer/blobstore"
	"github.com/cofferfs/coffer/cipher"
)

// KMS root keys (DESIGN.md §2, kind kms): the one place coffer talks to
// AWS KMS. cipher never does; it takes a cipher.KMSEncrypter or
// cipher.KMSDecrypter, which kmsClient is. A command that names a KMS
// key (--kms-key-id or COFFER_KMS_KEY_ID) calls Decrypt once, right after
// it read the config (volumePlan.openStore), with KeyId = that key, never
// one read from the config; init and key add call Encrypt once.

const envKMSKeyID = "COFFER_KMS_KEY_ID"

// KMS calls are small: a few seconds settle whether KMS answers. Denied,
// disabled and unknown keys are answered at once; an unreachable endpoint
// fails after kmsAttempts quick tries, a silent one after kmsTimeout.
const (
	kmsTimeout     = 10 * time.Second
	kmsDialTimeout = 3 * time.Second
	kmsAttempts    = 3
)

// kmsFlags name the KMS key of a kms root key and how to reach KMS.
type kmsFlags struct {
	keyID    string
	endpoint string
	name     string // the key's flag: --kms-key-id, or --open-kms-key-id in key add
}

const kmsKeyFlag = "kms-key-id"

func (k *kmsFlags) register(f *pflag.FlagSet) { k.registerAs(f, kmsKeyFlag) }

func (k *kmsFlags) registerAs(f *pflag.FlagSet, name string) {
	k.name = name
	f.StringVar(&k.keyID, name, "", "AWS KMS key (key ID, key ARN, alias name or alias ARN) whose entry opens the volume; no key file is read (env "+envKMSKeyID+")")
	f.StringVar(&k.endpoint, "kms-endpoint", "", "KMS endpoint URL (default: the AWS SDK's, e.g. $AWS_ENDPOINT_URL_KMS)")
}

func (k *kmsFlags) flagName() string {
	if k.name == "" {
		return kmsKeyFlag
	}
	return k.name
}

// key is the KMS key the user named: the flag, else the environment.
func (k *kmsFlags) key(e *env) string {
	if k.keyID != "" {
		return k.keyID
	}
	return e.getenv(envKMSKeyID)
}

// kmsPlan is a KMS key to use, resolved from the flags before any I/O.
type kmsPlan struct {
	keyID     string
	endpoint  string
	region    string // the store's --region: the fallback when neither the ARN nor the SDK names one
	allowHTTP bool
}

// plan returns nil when no KMS key is named.
func (k *kmsFlags) plan(e *env, store *storeFlags) (*kmsPlan, error) {
	id := k.key(e)
	if id == "" {
		return nil, nil
	}
	if k.endpoint != "" {
		if err := blobstore.CheckEndpoint(k.endpoint, store.allowHTTP); err != nil {
			return nil, &usageError{err: kmsEndpointError(err)}
		}
	}
	return &kmsPlan{keyID: id, endpoint: k.endpoint, region: store.region, allowHTTP: store.allowHTTP}, nil
}

func kmsEndpointError(err error) error {
	return errors.New("KMS endpoint: " + strings.TrimPrefix(err.Error(), "s3: "))
}

// kmsClient is KMS through the AWS SDK: the usual credential chain,
// AWS_ENDPOINT_URL_KMS or --kms-endpoint, bounded retries and timeouts.
type kmsClient struct {
	c        *kms.Client
	endpoint string
}

// regionOfARN is the region field of an ARN ("arn:aws:kms:REGION:..."),
// or "".
func regionOfARN(id string) string {
	parts := strings.SplitN(id, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "kms" {
		return parts[3]
	}
	return ""
}

func (p *kmsPlan) client(ctx context.Context) (*kmsClient, error) {
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = kmsDialTimeout }).
		WithTimeout(kmsTimeout / 2)
	opts := []func(*config.LoadOptions) error{
		config.WithLogger(kmsLogger{}),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = kmsAttempts
				o.MaxBackoff = time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if r := regionOfARN(p.keyID); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("KMS: loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = p.region
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("no AWS region for KMS key %s: give the key's ARN, or set AWS_REGION (or --region)", p.keyID)
	}
	k := &kmsClient{}
	var endpointErr error
	k.c = kms.NewFromConfig(cfg, func(o *kms.Options) {
		if p.endpoint != "" {
			o.BaseEndpoint = aws.String(p.endpoint)
		}
		if o.BaseEndpoint != nil {
			// An endpoint from AWS_ENDPOINT_URL_KMS gets the same check.
			if err := blobstore.CheckEndpoint(*o.BaseEndpoint, p.allowHTTP); err != nil {
				endpointErr = kmsEndpointError(err)
			}
			k.endpoint = *o.BaseEndpoint
		}
	})
	if endpointErr != nil {
		return nil, endpointErr
	}
	if k.endpoint == "" {
		k.endpoint = "https://kms." + cfg.Region + ".amazonaws.com"
	}
	return k, nil
}

func (k *kmsClient) Encrypt(ctx context.Context, keyID string, plaintext []byte, ec map[string]string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, kmsTimeout)
	defer cancel()
	out, err := k.c.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: plaintext, EncryptionContext: ec})
	if err != nil {
		return nil, "", k.error("Encrypt", keyID, err)
	}
	return out.CiphertextBlob, aws.ToString(out.KeyId), nil
}

func (k *kmsClient) Decrypt(ctx context.Context, keyID string, ciphertext []byte, ec map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, kmsTimeout)
	defer cancel()
	out, err := k.c.Decrypt(ctx, &kms.DecryptInput{KeyId: &keyID, CiphertextBlob: ciphertext, EncryptionContext: ec})
	if err != nil {
		return nil, k.error("Decrypt", keyID, err)
	}
	return out.Plaintext, nil
}

// error words a failed KMS call as one line saying what to do. A refused
// ciphertext wraps cipher.ErrKMSCiphertext, which cipher tells apart from
// the rest (those are about the key or the way to KMS).
func (k *kmsClient) error(op, keyID string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "InvalidCiphertextException", "IncorrectKeyException":
			return fmt.Errorf("%w (%s)", cipher.ErrKMSCiphertext, api.ErrorCode())
		case "AccessDeniedException":
			return fmt.Errorf("KMS denied %s with key %s: grant this AWS identity kms:%s on that key (for the coffer-* encryption context)", op, keyID, op)
		case "DisabledException":
			return fmt.Errorf("KMS key %s is disabled: enable it in KMS, or use another root key of the volume", keyID)
		case "KMSInvalidStateException":
			return fmt.Errorf("KMS key %s cannot be used in its current state (%s): cancel its deletion, or use another root key of the volume", keyID, oneLine(api.ErrorMessage()))
		case "NotFoundException":
			return fmt.Errorf("no KMS key %s at %s: check --kms-key-id and the region", keyID, k.endpoint)
		case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
			return fmt.Errorf("KMS at %s refused the AWS credentials (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE", k.endpoint, api.ErrorCode())
		}
		return fmt.Errorf("KMS %s with key %s failed: %s: %s", op, keyID, api.ErrorCode(), oneLine(api.ErrorMessage()))
	}
	var (
		opErr  *net.OpError
		dnsErr *net.DNSError
	)
	switch {
	case noCredentials(err):
		return fmt.Errorf("no AWS credentials found for KMS: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role provides them")
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("KMS at %s did not answer within %s: check --kms-endpoint (or AWS_ENDPOINT_URL_KMS), the network, and that KMS is reachable", k.endpoint, kmsTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to KMS at %s (connection refused): check --kms-endpoint (or AWS_ENDPOINT_URL_KMS)", k.endpoint)
	case errors.As(err, &opErr), errors.As(err, &dnsErr):
		return fmt.Errorf("cannot reach KMS at %s: check --kms-endpoint (or AWS_ENDPOINT_URL_KMS) and the network: %v", k.endpoint, oneLine(err.Error()))
	}
	return fmt.Errorf("KMS %s with key %s: %v", op, keyID, oneLine(err.Error()))
}

// kmsLogger sends the SDK's own log lines to slog at debug level (it
// would otherwise print warnings to stderr, breaking one-line errors).
type kmsLogger struct{}

func (kmsLogger) Logf(c logging.Classification, format string, v ...any) {
	slog.Debug("aws sdk (kms): "+fmt.Sprintf(format, v...), "class", string(c))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rootKey decrypts the root secret of the volume's kms entry that the
// named key opens (cipher.Config.KMSRootKey: one Decrypt call). url names
// the store in messages.
func (p *kmsPlan) rootKey(ctx context.Context, cfg *cipher.Config, url string) (*cipher.RootKey, error) {
	if len(cfg.KMSEntries()) == 0 {
		return nil, fmt.Errorf("the volume at %s has no KMS root key: open it with its --key-file or --passphrase-file (drop --kms-key-id / %s)", url, envKMSKeyID)
	}
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	root, err := cfg.KMSRootKey(ctx, c, p.keyID)
	switch {
	case err == nil:
		return root, nil
	case errors.Is(err, cipher.ErrNoKeyOpens):
		return nil, fmt.Errorf("wrong KMS key: %s opens none of the KMS root keys of the volume at %s (%s); name the key it was initialised or added with", p.keyID, url, kmsEntriesText(cfg))
	case errors.Is(err, cipher.ErrConfigTampered):
		return nil, fmt.Errorf("the volume config at %s failed authentication: %s: refusing to open it", url, strings.TrimPrefix(err.Error(), cipher.ErrConfigTampered.Error()+": "))
	}
	return nil, err
}

func kmsEntriesText(cfg *cipher.Config) string {
	var s []string
	for _, e := range cfg.KMSEntries() {
		s = append(s, e.KeyARN)
	}
	return "it lists " + strings.Join(s, ", ")
}

// newRootKey makes the root key of a new kms entry of volume v (init, key
// add): one Encrypt call.
func (p *kmsPlan) newRootKey(ctx context.Context, v cipher.VolumeID) (*cipher.RootKey, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	return cipher.NewKMSRootKey(ctx, c, v, p.keyID)
}
