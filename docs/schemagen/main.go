// Command schemagen writes the schema section of docs/reference.md from
// schema.graphqls: `go generate ./docs/` runs it. The page is rewritten only
// between its schema markers, and only when that section changed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"tollgate/docs"
)

func main() {
	schema := flag.String("schema", "../schema.graphqls", "the GraphQL schema (SDL)")
	page := flag.String("page", "reference.md", "the Markdown page holding the schema markers")
	flag.Parse()
	if err := run(*schema, *page); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(schemaPath, pagePath string) error {
	src, err := os.ReadFile(schemaPath)
	if err != nil {
		return err
	}
	section, err := docs.RenderSchema("schema.graphqls", src)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(pagePath)
	if err != nil {
		return err
	}
	out, err := docs.Splice(string(old), section)
	if err != nil {
		return fmt.Errorf("%s: %w", pagePath, err)
	}
	if bytes.Equal(old, []byte(out)) {
		return nil
	}
	info, err := os.Stat(pagePath)
	if err != nil {
		return err
	}
	return os.WriteFile(pagePath, []byte(out), info.Mode().Perm())
}
