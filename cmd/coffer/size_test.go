package main

import "testing"

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"64K", 64 << 10, true},
		{"64KiB", 64 << 10, true},
		{"16M", 16 << 20, true},
		{"16MiB", 16 << 20, true},
		{"16mib", 16 << 20, true},
		{"1G", 1 << 30, true},
		{"1.5GiB", 3 << 29, true},
		{"2GB", 2e9, true},
		{"10B", 10, true},
		{" 5 MiB ", 5 << 20, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1M", 0, false},
		{"lots", 0, false},
		{"NaN", 0, false},
		{"1e30T", 0, false},
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatByteSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{0, "0"}, {1000, "1000"}, {64 << 10, "64KiB"}, {16 << 20, "16MiB"}, {1 << 30, "1GiB"}, {3 << 29, "1536MiB"}}
	for _, tt := range tests {
		if got := formatByteSize(tt.in); got != tt.want {
			t.Errorf("formatByteSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := parseByteSize(formatByteSize(tt.in)); err != nil || back != tt.in {
			t.Errorf("round trip of %d: %d, %v", tt.in, back, err)
		}
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"1", "16MiB", "2G", "1.5GB", "", "x", "-3K", "9999999999T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseByteSize(s)
		if err == nil && n < 0 {
			t.Fatalf("parseByteSize(%q) = %d: negative", s, n)
		}
	})
}
