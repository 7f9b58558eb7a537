//go:build !linux

package alert

import "os"

// syncData makes the data of the files in dir durable, one fsync each.
func syncData(_ string, files []string) error {
	for _, name := range files {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
